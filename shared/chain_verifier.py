"""Walking the hash chain (shared/chain.py) entry by entry: where it breaks, if it does.

`Verifier` recomputes each link from the stored event (or takes the SHA-256 of its body rendered
from the stored columns, the fast path), checks signed checkpoints, key changes and redaction
statements against the keys trusted for the service, and holds an event that does not hash as
sealed until a redaction statement covers it. `verify` walks a whole chain at once.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared import canonical as jcs
from shared import keys as keysmod
from shared import signing
from shared.chain import (
    GENESIS,
    LOG_REDACTED,
    REDACTION_SIGNED_FIELDS,
    SIGNED,
    ChainEntry,
    Redaction,
    Verdict,
    body_digest,
    link_digest,
)


@dataclass(frozen=True, slots=True)
class _Held:
    """A position whose event does not hash to what was sealed: failed, unless a redaction
    statement met later covers it."""

    event_id: str
    previous: bytes  # the chain hash before it
    sealed: bytes  # its stored chain hash
    digest: bytes | None  # the SHA-256 of its canonical body now (None: it has none)
    problem: str
    claimed: bool  # its body is the redacted form a recorded redaction names


def unpinned_warning(service: str | None) -> str:
    return (
        f"checkpoint signatures not checked: no pinned key for {service or 'this log'}"
        " (TRUSTED_KEYS); each was checked only against the key it carries, which a rewrite"
        " can replace"
    )


class Verifier:
    """Walks a chain entry by entry (streaming: memory grows by 32 bytes an event).

    With `keys` pinning keys for `service`, a checkpoint counts only if signed by one of them
    or by a key announced since in this log (`audit.signing-key-changed`, signed by a key
    already trusted); `keys` is extended as announcements are met, so pass a ring of its own.
    Without a pinned key, checkpoints are checked against the key they carry and the verdict
    says so in its `warning`.

    An event that does not hash to what was sealed is held (the walk goes on with its sealed
    hash) until a redaction statement (`privacy.log-redacted`, signed like a checkpoint) covers
    it: its body must hash to the statement's `after` digest and the statement's `before`
    digest must link to its sealed hash. Held at the end, or when anything else fails, it is
    the verdict's failure. `redactions` (position: Redaction, e.g. the log_redactions table)
    are the redactions known ahead: such a position is accepted on the fast path
    (`add_digest`) and, while held, reported as not covered rather than as a mismatch."""

    def __init__(
        self,
        *,
        service: str | None = None,
        keys: keysmod.KeyRing | None = None,
        redactions: Mapping[int, Redaction] | None = None,
    ) -> None:
        self.hashes: list[bytes] = []  # recomputed hash of position i + 1
        self.checkpoints = 0
        self.recanonicalised = 0
        self.redactions_checked = 0
        self.failure: Verdict | None = None
        self.service = service
        self.keys = keys if keys is not None and service and keys.keys(service) else None
        self.warning = None if self.keys is not None else unpinned_warning(service)
        self.redactions = dict(redactions or {})
        self.held: dict[int, _Held] = {}  # positions not hashing as sealed, not yet covered

    @property
    def head(self) -> bytes:
        return self.hashes[-1] if self.hashes else GENESIS

    def _verdict(
        self, *, head: int, head_hash: bytes, bad: int | None = None, problem: str | None = None
    ) -> Verdict:
        return Verdict(
            intact=bad is None,
            checked=head,
            head_position=head,
            head_hash=head_hash,
            bad_position=bad,
            problem=problem,
            checkpoints_checked=self.checkpoints,
            recanonicalised=self.recanonicalised,
            warning=self.warning,
            redactions_checked=self.redactions_checked,
        )

    def _fail_held(self, position: int) -> Verdict:
        held = self.held[position]
        self.failure = self._verdict(
            head=position - 1, head_hash=held.previous, bad=position, problem=held.problem
        )
        return self.failure

    def _broken(self, position: int, problem: str) -> Verdict:
        # an earlier event that does not hash as sealed, and is no known redaction, is the
        # first failure (a statement met later could still have covered a known one)
        unclaimed = [p for p, h in self.held.items() if not h.claimed and p < position]
        if unclaimed:
            return self._fail_held(min(unclaimed))
        head = len(self.hashes)
        self.failure = self._verdict(head=head, head_hash=self.head, bad=position, problem=problem)
        return self.failure

    def unreadable(self, position: int, reason: str) -> Verdict:
        """The row sealed at `position` cannot even be read (e.g. an instant before year 1)."""
        return self.failure or self._broken(position, f"the event here cannot be read: {reason}")

    def signed(self, event_type: str, data: Mapping[str, Any]) -> Verdict | None:
        """Check a checkpoint, a key change or a redaction statement of the log, just added at
        the head."""
        if event_type == signing.CHECKPOINT:
            return self.check_checkpoint(data)
        if event_type == LOG_REDACTED:
            return self.check_redactions(data)
        if event_type == keysmod.KEY_CHANGED and self.keys is not None:
            assert self.service is not None
            try:
                self.keys.announce(self.service, data)
            except keysmod.UntrustedKey as exc:
                return self._broken(
                    len(self.hashes),
                    f"key change at {len(self.hashes)} to key {data.get('public_key')} is not"
                    f" signed by a key trusted for {self.service}: {exc.reason}",
                )
        return None

    def _signature_problem(
        self, document: Mapping[str, Any], fields: tuple[str, ...] = signing.SIGNED_FIELDS
    ) -> str | None:
        key = str(document.get("public_key"))
        if self.keys is None:
            if fields == signing.SIGNED_FIELDS:
                valid = signing.signature_valid(document)
                return (
                    None if valid else "has a signature that is not valid (with the key it carries)"
                )
            service = str(document.get("service"))
            try:
                ring = keysmod.KeyRing.pinned({service: [key]})
            except (ValueError, TypeError):
                return "is malformed"
        else:
            assert self.service is not None
            service = self.service
            ring = self.keys
            if document.get("service") != self.service:
                return f"is of {document.get('service')}, in {self.service}'s log"
            if not ring.trusts(self.service, key):
                return f"signed by key {key}, which is neither pinned nor announced"
        try:
            body = jcs.dumps({k: document[k] for k in fields})
            signature = base64.b64decode(str(document["signature"]), validate=True)
            ring.verify(service, key, signature, body)
        except (KeyError, ValueError, TypeError, jcs.CanonicalizationError):
            return "is malformed"
        except keysmod.UntrustedKey as exc:
            if self.keys is None:
                return "has a signature that is not valid (with the key it carries)"
            return f"has a signature that is not valid ({exc.reason})"
        return None

    def check_checkpoint(self, checkpoint: Mapping[str, Any]) -> Verdict | None:
        at = int(checkpoint["position"])
        if (problem := self._signature_problem(checkpoint)) is not None:
            return self._broken(at, f"checkpoint at {at} {problem}")
        if at > len(self.hashes):
            return self._broken(
                len(self.hashes) + 1,
                f"the log ends before the signed checkpoint at {at}: its tail was deleted",
            )
        if self.hashes[at - 1].hex() != checkpoint["hash"]:
            return self._broken(
                at, "the chain no longer matches the checkpoint signed at this position"
            )
        self.checkpoints += 1
        return None

    def check_redactions(self, statement: Mapping[str, Any]) -> Verdict | None:
        """A redaction statement, just added at the head: signed by a key trusted for the
        service (as a checkpoint), naming the chain head before it as it is; each redaction it
        lists covers the held position it matches (see the class)."""
        at = len(self.hashes)
        problem = self._signature_problem(statement, REDACTION_SIGNED_FIELDS)
        if problem is not None:
            return self._broken(at, f"redaction statement at {at} {problem}")
        try:
            redactions = [Redaction.from_dict(r) for r in statement["redactions"]]
            head = statement["head_position"]
            if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head < at:
                raise ValueError("its head is not a position before it")
            if any(r.position > head for r in redactions):
                raise ValueError("it names a position after its head")
        except (KeyError, ValueError, TypeError) as exc:
            return self._broken(at, f"redaction statement at {at} is malformed: {exc}")
        named = self.hashes[head - 1] if head else GENESIS
        if named.hex() != statement["head_hash"]:
            return self._broken(
                at, f"the chain no longer matches the head the redaction statement at {at} names"
            )
        for redaction in redactions:
            held = self.held.get(redaction.position)
            if (
                held is not None
                and held.event_id == redaction.event_id
                and held.digest == redaction.after
                and link_digest(held.previous, redaction.before) == held.sealed
            ):
                del self.held[redaction.position]
                self.redactions_checked += 1
        return None

    def _not_covered(self, position: int) -> str:
        return (
            f"the event at {position} was redacted (its body is the redacted form recorded),"
            " but no redaction statement signed by a key trusted for"
            f" {self.service or 'this log'} covers it"
        )

    def add_digest(self, position: int, stored_hash: bytes, digest: bytes | None) -> bool:
        """The fast path: `digest` is the SHA-256 of the canonical body rendered from the stored
        columns of the event sealed at `position`. True when it chains to exactly the stored
        hash (the stored event is then byte for byte what was sealed), or when it is the
        redacted form of a known redaction whose original chains to it (held until a statement
        covers it): the event is accepted. False changes nothing: the caller checks the entry
        in full with `add` (which canonicalises the event again and names what is wrong, if
        anything is). A checkpoint event accepted here must still have its signature checked
        (`check_checkpoint`)."""
        if self.failure is not None or digest is None or position != len(self.hashes) + 1:
            return False
        recomputed = link_digest(self.head, digest)
        if recomputed != stored_hash:
            claim = self.redactions.get(position)
            if (
                claim is None
                or claim.after != digest
                or link_digest(self.head, claim.before) != stored_hash
            ):
                return False
            self.held[position] = _Held(
                event_id=claim.event_id,
                previous=self.head,
                sealed=stored_hash,
                digest=digest,
                problem=self._not_covered(position),
                claimed=True,
            )
        self.hashes.append(stored_hash)
        return True

    def add(self, entry: ChainEntry) -> Verdict | None:
        """Check one more entry; returns the failure, if this entry is where it breaks."""
        if self.failure is not None:
            return self.failure
        self.recanonicalised += 1
        expected = len(self.hashes) + 1
        if entry.position != expected:
            kind = "deleted" if entry.position > expected else "reordered"
            return self._broken(
                expected, f"chain rows {kind}: expected position {expected}, found {entry.position}"
            )
        if entry.event is None:
            return self._broken(expected, f"event {entry.event_id} sealed here was deleted")
        if str(entry.event.event_id) != entry.event_id:
            return self._broken(expected, "the event here is not the one sealed here (replaced)")
        try:
            digest = body_digest(entry.event, position=expected)
        except (ValueError, ArithmeticError, TypeError, AttributeError, RecursionError) as exc:
            return self._broken(expected, f"the event here has no canonical form: {exc}")
        recomputed = link_digest(self.head, digest)
        if recomputed != entry.hash:
            mismatch = (
                "hash mismatch: the event was modified after it was"
                " sealed, or chain rows were swapped"
            )
            if entry.event.event_type in SIGNED:  # never redacted: what it says is read
                return self._broken(expected, mismatch)
            claim = self.redactions.get(expected)
            claimed = (
                claim is not None
                and claim.after == digest
                and claim.event_id == entry.event_id
                and link_digest(self.head, claim.before) == entry.hash
            )
            self.held[expected] = _Held(
                event_id=entry.event_id,
                previous=self.head,
                sealed=entry.hash,
                digest=digest,
                problem=self._not_covered(expected) if claimed else mismatch,
                claimed=claimed,
            )
            self.hashes.append(entry.hash)
            return None
        self.hashes.append(recomputed)
        if entry.event.event_type in SIGNED:
            return self.signed(entry.event.event_type, entry.event.data)
        return None

    def finish(
        self,
        *,
        unsealed_behind: Iterable[int] = (),
        sealed_head: int | None = None,
        held_checkpoints: Iterable[Mapping[str, Any]] = (),
    ) -> Verdict:
        if self.failure is not None:
            return self.failure
        if self.held:  # not covered by any statement: the first is where the chain breaks
            return self._fail_held(min(self.held))
        for held in held_checkpoints:
            if (found := self.check_checkpoint(held)) is not None:
                return found
        if sealed_head is not None and sealed_head > len(self.hashes):
            return self._broken(
                len(self.hashes) + 1,
                f"the chain ends at {len(self.hashes)}"
                f" but {sealed_head} positions were sealed: its tail was deleted",
            )
        inserted = sorted(unsealed_behind)
        if inserted:
            return self._broken(
                inserted[0],
                "an event was inserted behind the sealer's back: it is in the log but in no chain",
            )
        return self._verdict(head=len(self.hashes), head_hash=self.head)


def verify(
    entries: Iterable[ChainEntry],
    *,
    unsealed_behind: Iterable[int] = (),
    sealed_head: int | None = None,
    held_checkpoints: Iterable[Mapping[str, Any]] = (),
    service: str | None = None,
    keys: keysmod.KeyRing | None = None,
    redactions: Mapping[int, Redaction] | None = None,
) -> Verdict:
    """Walk the chain in position order and report the first position where it breaks.

    ``unsealed_behind`` lists positions of events found in the log that the chain never
    sealed although the sealer has already passed them: rows inserted behind its back.
    Signed checkpoints found in the log, and ``held_checkpoints`` (copies an auditor kept
    from earlier), must carry a valid signature and match the recomputed chain; see Verifier
    for `service` and `keys`.
    """
    walker = Verifier(service=service, keys=keys, redactions=redactions)
    for entry in entries:
        if (found := walker.add(entry)) is not None:
            return found
    return walker.finish(
        unsealed_behind=unsealed_behind, sealed_head=sealed_head, held_checkpoints=held_checkpoints
    )
