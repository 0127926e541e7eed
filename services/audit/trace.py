"""Trace one need, pledge, convoy or correlation id across every service, in time order.

The story of a need or a pledge includes the road of every convoy that carried its lines: the
convoy's whole stream (planned, dispatched, checkpoints, border crossings, custody hand-offs,
incidents, arrival, delivery, closing), leaving out only what was loaded or unloaded there for
other pledges. The story of a pledge leaves out the other pledges answering the same need and
their convoys; that of a convoy, the other convoys and the pledges it does not carry (`story`)."""

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
PLEDGE = "pledge"
NEED = "need"
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
    """The story of `target` (see `story`) from every service's feed."""
    histories: dict[str, list[RecordedEvent]] = {}
    for service, url in feeds.items():
        histories[service] = [e async for e in sources.from_feed(client, url, key=key)]
    return story(histories, target)


def _pledges_loaded(events: Iterable[RecordedEvent]) -> set[str]:
    """The pledges whose lines `events` (a convoy's) loaded or unloaded."""
    return {
        str(e.data["pledge_id"])
        for e in events
        if e.event_type in LINE_EVENTS and isinstance(e.data, Mapping) and "pledge_id" in e.data
    }


def _values(value: Any, field: str) -> set[str]:
    """Every string held under `field` anywhere in `value` (a need_id in a pledge's lines)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == field and isinstance(v, str):
                found.add(v)
            else:
                found |= _values(v, field)
    elif isinstance(value, list):
        for v in value:
            found |= _values(v, field)
    return found


def story(histories: Mapping[str, Iterable[RecordedEvent]], target: str) -> list[Step]:
    """Every event about `target` and every event sharing a correlation id with one, from every
    service, ordered by when they happened (then by when recorded), then the road of each
    convoy that carried its lines.

    A correlation id is shared by more than one record: a need's reaches every pledge line
    answering it and every convoy loading one. So a convoy's or a pledge's story keeps, of the
    other records sharing it, only its own: a convoy's are the pledges whose lines it carries
    (their streams) and the needs they answer; a pledge's, the convoys carrying its lines. The
    story of a need or of a correlation id is the whole of it: every pledge, every convoy."""
    events = [(service, e) for service, history in histories.items() for e in history]
    streams: dict[str, list[RecordedEvent]] = {}
    for _, e in events:
        streams.setdefault(e.stream_id, []).append(e)
    about = {e.event_id for _, e in events if _about(e, target)}
    correlations = {
        e.metadata.correlation_id
        for _, e in events
        if e.event_id in about and e.metadata.correlation_id
    }
    pledges: set[str] | None = None  # None: every one the correlations reach
    convoys: set[str] | None = None
    needs: set[str] = set()
    if f"{CONVOY}-{target}" in streams:
        convoys = {f"{CONVOY}-{target}"}
        pledges = _pledges_loaded(streams[f"{CONVOY}-{target}"])
        for pledge in pledges:
            for e in streams.get(f"{PLEDGE}-{pledge}", []):
                about.add(e.event_id)
                needs |= _values(e.data, "need_id")
        for need in needs:
            about |= {e.event_id for e in streams.get(f"{NEED}-{need}", [])}
    elif f"{PLEDGE}-{target}" in streams:
        pledges = {target}
        convoys = {
            stream_id
            for stream_id, found in streams.items()
            if found[0].stream_type == CONVOY and target in _pledges_loaded(found)
        }

    def ours(e: RecordedEvent) -> bool:
        """An event sharing a correlation id: in the story unless another record's."""
        if e.stream_type == PLEDGE and pledges is not None:
            return e.stream_id.removeprefix(f"{PLEDGE}-") in pledges
        if e.stream_type == CONVOY and convoys is not None:
            if e.stream_id not in convoys:
                return False
            return e.event_type not in LINE_EVENTS or bool(
                _pledges_loaded([e]) & (pledges or set())
            )
        return True

    steps = [
        Step(service, e)
        for service, e in events
        if e.event_id in about or (e.metadata.correlation_id in correlations and ours(e))
    ]
    found = {s.event.event_id for s in steps}
    if convoys is None:
        convoys = {s.event.stream_id for s in steps if s.event.stream_type == CONVOY}
    steps += [
        Step(service, e)
        for service, e in events
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
