"""What a consumer receives from another service, whichever path brought it (Kafka or feed)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from shared.events import Metadata


@dataclass(frozen=True, slots=True)
class Incoming:
    """An upstream event as a consumer sees it, whichever path (Kafka or feed) brought it."""

    upstream: str
    event_id: uuid.UUID
    position: int
    event_type: str
    stream_id: str
    stream_version: int
    occurred_at: datetime
    data: Mapping[str, Any]
    correlation_id: str | None
    organisation: str | None

    def caused(self, *, actor: str) -> Metadata:
        """Metadata for events this one causes downstream: same correlation, caused by it."""
        return Metadata(
            actor=actor,
            organisation=self.organisation,
            correlation_id=self.correlation_id,
            causation_id=str(self.event_id),
        )


Handler = Callable[[asyncpg.Connection, Incoming], Awaitable[None]]


class Unparseable(ValueError):
    pass


def header_map(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}


def parse_record(record: ConsumerRecord[bytes, bytes]) -> Incoming:
    headers = header_map(record)
    try:
        source = headers["ce_source"]
        if not source.startswith("/twinaid/"):
            raise Unparseable(f"unknown ce_source {source!r}")
        data = json.loads(record.value or b"")
        if not isinstance(data, dict):
            raise Unparseable("the value is not a JSON object")
        return Incoming(
            upstream=source.removeprefix("/twinaid/"),
            event_id=uuid.UUID(headers["ce_id"]),
            position=int(headers["ce_position"]),
            event_type=headers["ce_type"],
            stream_id=headers["ce_subject"],
            stream_version=int(headers.get("ce_streamversion", "0")),
            occurred_at=datetime.fromisoformat(headers["ce_time"]),
            data=data,
            correlation_id=headers.get("ce_correlationid") or None,
            organisation=headers.get("ce_organisation") or None,
        )
    except Unparseable:
        raise
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise Unparseable(f"cannot parse the message: {exc!r}") from exc


def parse_feed_event(upstream: str, raw: Mapping[str, Any]) -> Incoming:
    meta = raw.get("metadata") or {}
    return Incoming(
        upstream=upstream,
        event_id=uuid.UUID(raw["event_id"]),
        position=int(raw["position"]),
        event_type=raw["event_type"],
        stream_id=raw["stream_id"],
        stream_version=int(raw["stream_version"]),
        occurred_at=datetime.fromisoformat(raw["occurred_at"]),
        data=raw["data"],
        correlation_id=meta.get("correlation_id"),
        organisation=meta.get("organisation"),
    )
