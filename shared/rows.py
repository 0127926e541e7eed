"""Reading event rows: the columns every query selects and their conversion."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from shared.events import Metadata, RecordedEvent

COLUMNS = (
    "e.event_id, e.stream_type, e.stream_id, e.stream_version, e.event_type, e.schema_version,"
    " e.occurred_at, e.recorded_at, e.data, e.metadata"
)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def from_row(
    row: asyncpg.Record,
    *,
    position: int | None = None,
    hash: bytes | None = None,
) -> RecordedEvent:
    return RecordedEvent(
        event_id=row["event_id"],
        stream_type=row["stream_type"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        data=_loads(row["data"]),
        metadata=Metadata.from_dict(_loads(row["metadata"])),
        position=position,
        hash=hash,
    )
