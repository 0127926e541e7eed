"""The hash chain over the log: canonical JSON (RFC 8785) and SHA-256. Pure.

Each sealed event gets ``hash = sha256(previous_hash || sha256(canonical(event)))`` where the
canonical form covers its position and every stored field. The chain is computed by the single
sealer (see ``shared.outbox``), never by writers, so concurrent appends never wait on each other.

Writers store an event's data and metadata as their RFC 8785 text (``encode``), so the canonical
body of a stored event can also be rendered from its columns byte for byte, without parsing and
canonicalising again: ``Verifier.add_digest`` (shared/chain_verifier.py) accepts the SHA-256 of
such a rendering only when it chains to exactly what was sealed, and anything else is checked in
full with ``Verifier.add``.

Redactions (shared/privacy_migration.py): an event rewritten in place after it was sealed (its
personal data sealed, issue 20) keeps its chain hash, which covers the SHA-256 of its ORIGINAL
body. A `privacy.log-redacted` statement, appended after the rewrite and signed with the
service's key, lists each redacted position with the digest of the body as sealed (`before`) and
as it is now (`after`). The verifier (shared/chain_verifier.py, which walks a chain and gives its
`Verdict`) links such a position with `before` (the original body is not needed) and requires the
body now to hash to `after`; a position that does not hash is held until a statement signed by a
trusted key covers it, and fails the verdict otherwise.
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

from shared import canonical as jcs
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
    return jcs.dumps(event.as_json(position=position, instant=_instant))


# What the log holds, so that every stored row can be read back and sealed (the same rules as the
# events_sealable CHECK constraint, shared/migrations/shared_0001_baseline.sql): numbers within
# +-MAX_NUMBER (a float such as 1e20 is written by RFC 8785 as 100000000000000000000, which reads
# back as an integer beyond 2**53 that has no canonical form), no NUL character (PostgreSQL's jsonb
# and text cannot hold it), nesting at most MAX_DEPTH deep.
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
        text = jcs.text(value)
    except (jcs.CanonicalizationError, RecursionError) as exc:
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
    return jcs.dumps({"service": service, **redaction.as_dict()})


def redaction_statement_body(statement: Mapping[str, Any]) -> bytes:
    """The bytes a service signs in a `privacy.log-redacted` statement (KeyError if a field
    is missing)."""
    return jcs.dumps({k: statement[k] for k in REDACTION_SIGNED_FIELDS})


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
class ChainEntry:
    """One row of the chain as stored: the event it seals may be missing (deleted)."""

    position: int
    event_id: str
    hash: bytes
    event: RecordedEvent | None

    @classmethod
    def of(cls, event: RecordedEvent) -> ChainEntry:
        """The entry of an event that carries its own position and hash (read with them, or
        from a feed or a broker): 0 and no hash where it has none, which the verifier refuses."""
        return cls(event.position or 0, str(event.event_id), event.hash or b"", event)


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
