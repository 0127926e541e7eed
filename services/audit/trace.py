"""Trace one need, pledge, convoy or correlation id across every service, in time order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from services.audit import sources
from shared.events import RecordedEvent


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
            "position": e.position,
            "actor": e.metadata.actor,
            "organisation": e.metadata.organisation,
            "correlation_id": e.metadata.correlation_id,
            "causation_id": e.metadata.causation_id,
        }


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
    return sorted(steps, key=lambda s: (s.event.occurred_at, s.event.recorded_at))


def table(steps: Iterable[Step]) -> str:
    lines = [f"{'when (occurred)':<26} {'service':<10} {'event':<40} {'record':<34} by"]
    for s in steps:
        e = s.event
        who = f"{e.metadata.organisation or '-'} ({e.metadata.actor or '-'})"
        lines.append(
            f"{e.occurred_at.isoformat()[:26]:<26} {s.service:<10} "
            f"{e.event_type:<40} {e.stream_id[:34]:<34} {who}"
        )
    return "\n".join(lines)
