"""The shape of events in the log. Pure: no framework or driver imports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Metadata:
    actor: str | None = None
    organisation: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    idempotency_key: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "actor": self.actor,
            "organisation": self.organisation,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "idempotency_key": self.idempotency_key,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Metadata:
        return cls(
            actor=raw.get("actor"),
            organisation=raw.get("organisation"),
            correlation_id=raw.get("correlation_id"),
            causation_id=raw.get("causation_id"),
            idempotency_key=raw.get("idempotency_key"),
        )


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A fact decided by the domain, not yet stored. `occurred_at` may lie in the past."""

    event_type: str
    data: Mapping[str, Any]
    occurred_at: datetime | None = None
    schema_version: int = 1
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored. `position` is the dense global position, None until sealed."""

    event_id: uuid.UUID
    stream_type: str
    stream_id: str
    stream_version: int
    event_type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    data: Mapping[str, Any]
    metadata: Metadata
    position: int | None = None
    hash: bytes | None = None

    def as_json(
        self,
        *,
        position: int | None = None,
        instant: Callable[[datetime], str] = datetime.isoformat,
    ) -> dict[str, Any]:
        """The event as JSON values, without its hash: what the chain hashes (at `position`,
        its instants rendered by `instant`), and what the feed, the history and webhooks show
        (at its own position, instants in ISO 8601)."""
        return {
            "position": self.position if position is None else position,
            "event_id": str(self.event_id),
            "stream_type": self.stream_type,
            "stream_id": self.stream_id,
            "stream_version": self.stream_version,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "occurred_at": instant(self.occurred_at),
            "recorded_at": instant(self.recorded_at),
            "data": self.data,
            "metadata": self.metadata.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class Selection:
    """Which events of the log to read; every field given must match."""

    stream_type: str | None = None
    event_type: str | None = None
    organisation: str | None = None
    correlation_id: str | None = None
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None

    def matches(self, event: RecordedEvent) -> bool:
        return (
            (self.stream_type is None or event.stream_type == self.stream_type)
            and (self.event_type is None or event.event_type == self.event_type)
            and (self.organisation is None or event.metadata.organisation == self.organisation)
            and (
                self.correlation_id is None or event.metadata.correlation_id == self.correlation_id
            )
            and (self.recorded_from is None or event.recorded_at >= self.recorded_from)
            and (self.recorded_to is None or event.recorded_at < self.recorded_to)
        )
