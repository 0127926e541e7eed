"""The hash chain over the log: canonical JSON (RFC 8785) and SHA-256. Pure.

Each sealed event gets ``hash = sha256(previous_hash || sha256(canonical(event)))`` where the
canonical form covers its position and every stored field. The chain is computed by the single
sealer (see ``shared.outbox``), never by writers, so concurrent appends never wait on each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

from shared.events import RecordedEvent

GENESIS = bytes(32)


def _instant(value: datetime) -> str:
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


def link(previous: bytes, event: RecordedEvent, *, position: int) -> bytes:
    content = hashlib.sha256(canonical(event, position=position)).digest()
    return hashlib.sha256(previous + content).digest()


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "checked": self.checked,
            "head_position": self.head_position,
            "head_hash": self.head_hash.hex(),
            "bad_position": self.bad_position,
            "problem": self.problem,
        }


def verify(
    entries: Iterable[ChainEntry],
    *,
    unsealed_behind: Iterable[int] = (),
    sealed_head: int | None = None,
) -> Verdict:
    """Walk the chain in position order and report the first position where it breaks.

    ``unsealed_behind`` lists positions of events found in the log that the chain never
    sealed although the sealer has already passed them: rows inserted behind its back.
    """
    previous = GENESIS
    expected_position = 1
    checked = 0
    for entry in entries:
        if entry.position != expected_position:
            kind = "deleted" if entry.position > expected_position else "reordered"
            return _broken(
                checked,
                expected_position - 1,
                previous,
                expected_position,
                f"chain rows {kind}: expected position {expected_position}, found {entry.position}",
            )
        if entry.event is None:
            return _broken(
                checked,
                entry.position - 1,
                previous,
                entry.position,
                f"event {entry.event_id} sealed at this position was deleted",
            )
        if str(entry.event.event_id) != entry.event_id:
            return _broken(
                checked,
                entry.position - 1,
                previous,
                entry.position,
                "the event at this position is not the one sealed here (reordered or replaced)",
            )
        recomputed = link(previous, entry.event, position=entry.position)
        if recomputed != entry.hash:
            return _broken(
                checked,
                entry.position - 1,
                previous,
                entry.position,
                "hash mismatch: the event was modified after it was sealed, or chain rows were"
                " swapped",
            )
        previous = recomputed
        expected_position += 1
        checked += 1
    if sealed_head is not None and sealed_head > expected_position - 1:
        return _broken(
            checked,
            expected_position - 1,
            previous,
            expected_position,
            f"the chain ends at {expected_position - 1} but {sealed_head} positions were sealed:"
            " its tail was deleted",
        )
    inserted = sorted(unsealed_behind)
    if inserted:
        return _broken(
            checked,
            expected_position - 1,
            previous,
            inserted[0],
            "an event was inserted behind the sealer's back: it is in the log but in no chain",
        )
    return Verdict(
        intact=True, checked=checked, head_position=expected_position - 1, head_hash=previous
    )


def _broken(checked: int, head: int, head_hash: bytes, position: int, problem: str) -> Verdict:
    return Verdict(
        intact=False,
        checked=checked,
        head_position=head,
        head_hash=head_hash,
        bad_position=position,
        problem=problem,
    )
