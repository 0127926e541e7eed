"""Trace one need, pledge, convoy or correlation id across every service, in time order.

The story of a need or a pledge includes the road of every convoy that carried its lines: the
convoy's whole stream (planned, dispatched, checkpoints, border crossings, custody hand-offs,
incidents, arrival, delivery, closing), leaving out only what was loaded or unloaded there for
other pledges."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from services.audit import sources
from shared import consumed
from shared.codec import EventCodec, UndecodableEvent, unchanged
from shared.events import RecordedEvent

CONVOY = "convoy"
# a convoy's events about one manifest line: in a trace only when the line is the traced one's
LINE_EVENTS = frozenset({"shipments.manifest-line-loaded", "shipments.manifest-line-unloaded"})


@dataclass(frozen=True)
class Step:
    service: str
    event: RecordedEvent

    def as_dict(self) -> dict[str, Any]:
        e = self.event
        return {
            "service": self.service,
            "occurred_at": e.occurred_at.isoformat(),
            "recorded_at": e.recorded_at.isoformat(),
            "event_type": e.event_type,
            "stream_id": e.stream_id,
            "event_id": str(e.event_id),
            "position": e.position,
            "hash": e.hash.hex() if e.hash else None,
            "actor": e.metadata.actor,
            "organisation": e.metadata.organisation,
            "correlation_id": e.metadata.correlation_id,
            "causation_id": e.metadata.causation_id,
            "what": what(e),
        }


# The fields of shipments' convoy events a trace tells (services/shipments/events/), read
# through the audit's own models: version 2 of the types naming persons sealed them (version 1
# held them in clear); a person is told by name when the event holds one, else by subject.
class _Person(consumed.Tolerant):
    name: str | None = None
    subject_id: str | None = None
    role: str | None = None


class _Party(consumed.Tolerant):
    organisation_id: str | None = None
    name: str | None = None
    person: _Person | None = None


class _Planned(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.convoy-planned"
    SCHEMA_VERSION: ClassVar[int] = 2

    origin_id: str
    destination_id: str
    carrier_id: str


class _Loaded(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.manifest-line-loaded"

    quantity: str
    unit: str
    pledge_id: str
    line_id: str


class _Dispatched(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.convoy-dispatched"
    SCHEMA_VERSION: ClassVar[int] = 3

    custody: _Party | None = None


class _Checkpoint(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.checkpoint-recorded"

    place: str


class _Border(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.border-crossed"

    crossing_point: str
    outcome: str


class _HandedOff(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.custody-handed-off"
    SCHEMA_VERSION: ClassVar[int] = 2

    from_party: _Party
    to_party: _Party


class _Incident(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.incident-reported"

    kind: str
    description: str


class _Arrived(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.convoy-arrived"

    place: str | None = None


class _Confirmed(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.delivery-confirmed"
    SCHEMA_VERSION: ClassVar[int] = 2

    confirmed_by: _Person


class _Closed(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.convoy-closed"

    outcome: str | None = None


class _Cancelled(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "shipments.convoy-cancelled"

    reason: str | None = None


_ROAD: list[type[BaseModel]] = [
    _Planned,
    _Loaded,
    _Dispatched,
    _Checkpoint,
    _Border,
    _HandedOff,
    _Incident,
    _Arrived,
    _Confirmed,
    _Closed,
    _Cancelled,
]
ROAD = EventCodec(
    _ROAD,
    upcasters={
        **{(m.EVENT_TYPE, 1): unchanged for m in (_Planned, _Dispatched, _HandedOff, _Confirmed)},
        # version 3 dropped manifest_lines and weight_kg, which the trace does not read
        (_Dispatched.EVENT_TYPE, 2): unchanged,
    },
)


def _person(person: _Person | None) -> str | None:
    """A person's name as older events hold it; a sealed person's subject id (the feed holds
    the name encrypted: the service's views and /v1/privacy show it to whom may see it)."""
    if person is None:
        return None
    return person.name or person.subject_id or "a person"


def _party(party: _Party | None) -> str:
    if party is None:
        return "-"
    person = _person(party.person)
    body = party.organisation_id or party.name or "-"
    return f"{body} ({person})" if person else body


def what(event: RecordedEvent) -> str:
    """One line on what a convoy event says happened on the road ("" for other events, and
    for one the audit's models cannot read)."""
    if not ROAD.knows(event.event_type):
        return ""
    try:
        payload = ROAD.decode(event).payload
    except UndecodableEvent:
        return ""
    match payload:
        case _Planned():
            return f"{payload.origin_id} -> {payload.destination_id} by {payload.carrier_id}"
        case _Loaded():
            return f"{payload.quantity} {payload.unit} of {payload.pledge_id}/{payload.line_id}"
        case _Dispatched():
            return f"held by {_party(payload.custody)}"
        case _Checkpoint():
            return payload.place
        case _Border():
            return f"{payload.crossing_point}: {payload.outcome}"
        case _HandedOff():
            return f"{_party(payload.from_party)} -> {_party(payload.to_party)}"
        case _Incident():
            return f"{payload.kind}: {payload.description}"
        case _Arrived():
            return payload.place or ""
        case _Confirmed():
            person = payload.confirmed_by
            return f"confirmed by {_person(person)} ({person.role})"
        case _Closed():
            return payload.outcome or ""
        case _Cancelled():
            return payload.reason or ""
    return ""


def mentions(value: Any, target: str) -> bool:
    if isinstance(value, str):
        return value == target
    if isinstance(value, Mapping):
        return any(mentions(v, target) for v in value.values())
    if isinstance(value, list):
        return any(mentions(v, target) for v in value)
    return False


def _about(event: RecordedEvent, target: str) -> bool:
    return (
        event.metadata.correlation_id == target
        or event.stream_id.endswith(f"-{target}")
        or event.stream_id == target
        or mentions(event.data, target)
    )


async def trace(
    client: httpx.AsyncClient, feeds: Mapping[str, str], *, key: str, target: str
) -> list[Step]:
    """Every event that shares a correlation id with an event about `target`, plus the events
    about it, from every service, ordered by when they happened (then by when recorded)."""
    histories: dict[str, list[RecordedEvent]] = {}
    for service, url in feeds.items():
        histories[service] = [e async for e in sources.from_feed(client, url, key=key)]
    correlations = {
        e.metadata.correlation_id
        for events in histories.values()
        for e in events
        if _about(e, target) and e.metadata.correlation_id
    }
    steps = [
        Step(service, e)
        for service, events in histories.items()
        for e in events
        if _about(e, target) or e.metadata.correlation_id in correlations
    ]
    found = {s.event.event_id for s in steps}
    convoys = {s.event.stream_id for s in steps if s.event.stream_type == CONVOY}
    steps += [
        Step(service, e)
        for service, events in histories.items()
        for e in events
        if e.stream_type == CONVOY
        and e.stream_id in convoys
        and e.event_id not in found
        and e.event_type not in LINE_EVENTS
    ]
    return sorted(
        steps, key=lambda s: (s.event.occurred_at, s.event.recorded_at, s.event.position or 0)
    )


def table(steps: Iterable[Step]) -> str:
    """One line per step, ids and instants whole: when it happened, when it was recorded
    (a field entry can be recorded long after), where, what, by whom."""
    steps = list(steps)
    record = max([len("record"), *(len(s.event.stream_id) for s in steps)])
    event = max([len("event"), *(len(s.event.event_type) for s in steps)])
    lines = [
        f"{'occurred at':<32} {'recorded at':<32} {'service':<10} {'event':<{event}}"
        f" {'record':<{record}} by: what"
    ]
    for s in steps:
        e = s.event
        who = f"{e.metadata.organisation or '-'} ({e.metadata.actor or '-'})"
        said = what(e)
        lines.append(
            f"{e.occurred_at.isoformat():<32} {e.recorded_at.isoformat():<32} {s.service:<10}"
            f" {e.event_type:<{event}} {e.stream_id:<{record}} {who}"
            + (f": {said}" if said else "")
        )
    return "\n".join(lines)
