"""Trace one need, pledge, convoy or correlation id across every service, in time order.

The story of a need or a pledge includes the road of every convoy that carried its lines: the
convoy's whole stream (planned, dispatched, checkpoints, border crossings, custody hand-offs,
incidents, arrival, delivery, closing), leaving out only what was loaded or unloaded there for
other pledges."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from services.audit import sources
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


def _person(person: Mapping[str, Any] | None) -> str | None:
    """A person's name as older events hold it; a sealed person's subject id (the feed holds
    the name encrypted: the service's views and /v1/privacy show it to whom may see it)."""
    if not person:
        return None
    return str(person.get("name") or person.get("subject_id") or "a person")


def _party(party: Mapping[str, Any] | None) -> str:
    if not party:
        return "-"
    person = _person(party.get("person"))
    body = party.get("organisation_id") or party.get("name") or "-"
    return f"{body} ({person})" if person else str(body)


def what(event: RecordedEvent) -> str:
    """One line on what a convoy event says happened on the road ("" for other events)."""
    d = event.data
    match event.event_type.removeprefix("shipments."):
        case "convoy-planned":
            return f"{d['origin_id']} -> {d['destination_id']} by {d['carrier_id']}"
        case "manifest-line-loaded":
            return f"{d['quantity']} {d['unit']} of {d['pledge_id']}/{d['line_id']}"
        case "convoy-dispatched":
            return f"held by {_party(d.get('custody'))}"
        case "checkpoint-recorded":
            return str(d["place"])
        case "border-crossed":
            return f"{d['crossing_point']}: {d['outcome']}"
        case "custody-handed-off":
            return f"{_party(d['from_party'])} -> {_party(d['to_party'])}"
        case "incident-reported":
            return f"{d['kind']}: {d['description']}"
        case "convoy-arrived":
            return str(d.get("place") or "")
        case "delivery-confirmed":
            return f"confirmed by {_person(d['confirmed_by'])} ({d['confirmed_by']['role']})"
        case "convoy-closed" | "convoy-cancelled":
            return str(d.get("outcome") or d.get("reason") or "")
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
