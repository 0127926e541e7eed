"""The hash chain over the log: canonical JSON (RFC 8785) and SHA-256. Pure.

Each sealed event gets ``hash = sha256(previous_hash || sha256(canonical(event)))`` where the
canonical form covers its position and every stored field. The chain is computed by the single
sealer (see ``shared.outbox``), never by writers, so concurrent appends never wait on each other.

Writers store an event's data and metadata as their RFC 8785 text (``encode``), so the canonical
body of a stored event can also be rendered from its columns byte for byte, without parsing and
canonicalising again: ``Verifier.add_digest`` accepts the SHA-256 of such a rendering only when
it chains to exactly what was sealed, and anything else is checked in full with ``Verifier.add``.

Redactions (shared/privacy_migration.py): an event rewritten in place after it was sealed (its
personal data sealed, issue 20) keeps its chain hash, which covers the SHA-256 of its ORIGINAL
body. A `privacy.log-redacted` statement, appended after the rewrite and signed with the
service's key, lists each redacted position with the digest of the body as sealed (`before`) and
as it is now (`after`). The verifier links such a position with `before` (the original body is
not needed) and requires the body now to hash to `after`; a position that does not hash is held
until a statement signed by a trusted key covers it, and fails the verdict otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

from shared import keys as keysmod
from shared import signing
from shared.errors import ValidationFailed
from shared.events import RecordedEvent

GENESIS = bytes(32)
_sha256 = hashlib.sha256


def _instant(value: datetime) -> str:
    # asyncpg reads PostgreSQL's -infinity and infinity as naive datetimes: no instant at all
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} is not an instant (no time zone: an infinity?)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(event: RecordedEvent, *, position: int) -> bytes:
    body: dict[str, Any] = {
        "position": position,
        "event_id": str(event.event_id),
        "stream_type": event.stream_type,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": _instant(event.occurred_at),
        "recorded_at": _instant(event.recorded_at),
        "data": event.data,
        "metadata": event.metadata.as_dict(),
    }
    return rfc8785.dumps(body)


# What the log holds, so that every stored row can be read back and sealed (the same rules as
# the events_sealable CHECK constraint in shared/schema.sql): numbers within +-MAX_NUMBER (a
# float such as 1e20 is written by RFC 8785 as 100000000000000000000, which reads back as an
# integer beyond 2**53 that has no canonical form), no NUL character (PostgreSQL's jsonb and
# text cannot hold it), nesting at most MAX_DEPTH deep.
MAX_NUMBER = 2**53 - 1
MAX_DEPTH = 64
# Cheap signs that a canonical text may break a rule; only then is the value walked.
_SUSPECT = re.compile(r"\d{16}|e\+|\\u0000")


def encode(value: Any) -> str:
    """The RFC 8785 text of a JSON value: how event data and metadata are stored. A value that
    has no canonical form (an integer beyond 2**53, NaN), or that breaks a rule of the log
    (MAX_NUMBER, MAX_DEPTH, a NUL character), is refused (ValidationFailed) before anything is
    stored."""
    try:
        text = rfc8785.dumps(value).decode()
    except (rfc8785.CanonicalizationError, RecursionError) as exc:
        raise ValidationFailed(f"the event cannot be stored as canonical JSON: {exc}") from exc
    if _SUSPECT.search(text) or text.count("[") + text.count("{") > MAX_DEPTH:
        problem = unstorable(json.loads(text))
        if problem is not None:
            raise ValidationFailed(f"the event cannot be stored: {problem}")
    return text


def unstorable(value: Any, depth: int = 0) -> str | None:
    """Which rule of the log a parsed JSON value breaks, if any (see MAX_NUMBER). The root is
    at depth 0, the items of a container one deeper than the container."""
    if depth > MAX_DEPTH:
        return f"values are nested more than {MAX_DEPTH} deep"
    if isinstance(value, str):
        return "a text holds a NUL character" if "\x00" in value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if not -MAX_NUMBER <= value <= MAX_NUMBER:
            return f"the number {value} is beyond +-{MAX_NUMBER} (write it as a string)"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return "a key holds a NUL character"
        if (found := unstorable(item, depth + 1)) is not None:
            return found
    return None


def link_digest(previous: bytes, digest: bytes) -> bytes:
    """The next hash of the chain, given the SHA-256 of the event's canonical body."""
    return _sha256(previous + digest).digest()


def link_content(previous: bytes, content: bytes) -> bytes:
    return link_digest(previous, _sha256(content).digest())


def link(previous: bytes, event: RecordedEvent, *, position: int) -> bytes:
    return link_content(previous, canonical(event, position=position))


def body_digest(event: RecordedEvent, *, position: int) -> bytes:
    """The SHA-256 of the event's canonical body: what its chain link covers."""
    return _sha256(canonical(event, position=position)).digest()


# -- redactions (see the module's docstring) ----------------------------------------------------

LOG_REDACTED = "privacy.log-redacted"
# what a redaction statement's signature covers
REDACTION_SIGNED_FIELDS = (
    "service",
    "redactions",
    "head_position",
    "head_hash",
    "reason",
    "redacted_at",
)


@dataclass(frozen=True, slots=True)
class Redaction:
    """An event rewritten in place at `position`: the SHA-256 of its canonical body as it was
    sealed (`before`, which its chain link covers) and as it is now (`after`)."""

    position: int
    event_id: str
    before: bytes
    after: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "event_id": self.event_id,
            "before_sha256": self.before.hex(),
            "after_sha256": self.after.hex(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Redaction:
        """ValueError, KeyError or TypeError when `raw` is not one."""
        before = bytes.fromhex(str(raw["before_sha256"]))
        after = bytes.fromhex(str(raw["after_sha256"]))
        if len(before) != 32 or len(after) != 32:
            raise ValueError("a redaction's digests are SHA-256 digests")
        position = raw["position"]
        if not isinstance(position, int) or isinstance(position, bool) or position < 1:
            raise ValueError("a redaction's position is a position of the chain")
        return cls(position=position, event_id=str(raw["event_id"]), before=before, after=after)


def redaction_body(service: str, redaction: Redaction) -> bytes:
    """The bytes a service signs for ONE redaction (each entry of a statement carries its own
    signature, so a consumer that receives the redacted event again can check it alone)."""
    return rfc8785.dumps({"service": service, **redaction.as_dict()})


def redaction_statement_body(statement: Mapping[str, Any]) -> bytes:
    """The bytes a service signs in a `privacy.log-redacted` statement (KeyError if a field
    is missing)."""
    return rfc8785.dumps({k: statement[k] for k in REDACTION_SIGNED_FIELDS})


def sign_redactions(
    signer: signing.Signer,
    *,
    service: str,
    redactions: Iterable[Redaction],
    head_position: int,
    head_hash: bytes,
    reason: str,
    at: datetime,
) -> dict[str, Any]:
    """The data of a `privacy.log-redacted` event, signed with the service's key."""
    body: dict[str, Any] = {
        "service": service,
        "redactions": [
            {
                **r.as_dict(),
                "signature": base64.b64encode(signer.key.sign(redaction_body(service, r))).decode(),
            }
            for r in sorted(redactions, key=lambda r: r.position)
        ],
        "head_position": head_position,
        "head_hash": head_hash.hex(),
        "reason": reason,
        "redacted_at": _instant(at),
    }
    signature = signer.key.sign(redaction_statement_body(body))
    return {
        **body,
        "public_key": signer.public_key,
        "signature": base64.b64encode(signature).decode(),
    }


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


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One row of the chain as stored: the event it seals may be missing (deleted)."""

    position: int
    event_id: str
    hash: bytes
    event: RecordedEvent | None


@dataclass(frozen=True, slots=True)
class Verdict:
    intact: bool
    checked: int
    head_position: int
    head_hash: bytes
    bad_position: int | None = None
    problem: str | None = None
    checkpoints_checked: int = 0
    # events whose stored form was canonicalised again with rfc8785 (not rendered byte for byte)
    recanonicalised: int = 0
    # why checkpoint signatures were not checked against pinned keys (none pinned), if so
    warning: str | None = None
    # redacted positions checked against a signed redaction statement (chain.Redaction)
    redactions_checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "checked": self.checked,
            "head_position": self.head_position,
            "head_hash": self.head_hash.hex(),
            "bad_position": self.bad_position,
            "problem": self.problem,
            "checkpoints_checked": self.checkpoints_checked,
            "recanonicalised": self.recanonicalised,
            "warning": self.warning,
            "redactions_checked": self.redactions_checked,
        }


# the log's events whose data the verifier reads, besides hashing them
SIGNED = (signing.CHECKPOINT, keysmod.KEY_CHANGED, LOG_REDACTED)


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
            body = rfc8785.dumps({k: document[k] for k in fields})
            signature = base64.b64decode(str(document["signature"]), validate=True)
            ring.verify(service, key, signature, body)
        except (KeyError, ValueError, TypeError, rfc8785.CanonicalizationError):
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
