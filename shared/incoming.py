"""What a consumer receives from another service, whichever path brought it (Kafka or feed)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from shared.events import Metadata, RecordedEvent


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
    # What the chain hashes and the relay signs (shared/authenticity.py); a test that builds
    # an Incoming for a handler leaves them out.
    stream_type: str = ""
    schema_version: int = 1
    recorded_at: datetime | None = None
    metadata: Metadata | None = None
    chain_hash: bytes | None = None
    previous_hash: bytes | None = None
    signature: bytes | None = None
    signing_key: str | None = None
    lane_previous: bytes | None = None
    partition: int | None = None
    size: int = 0
    # the message's value as published: the RFC 8785 text of the data (shared/outbox.py)
    raw_data: bytes | None = None
    # an event rewritten in place after it was sealed (shared/privacy_migration.py): the
    # digests of its body as sealed and as it is now, and the upstream's signature of them
    # (`ce_redaction` header, or the feed's `redaction`; shared/authenticity.py checks it)
    redaction: Mapping[str, Any] | None = None

    def as_recorded(self) -> RecordedEvent:
        """The event as the upstream stored it: what its chain hash covers."""
        if self.recorded_at is None or self.metadata is None:
            raise ValueError("the message lacks its recorded time or metadata")
        return RecordedEvent(
            event_id=self.event_id,
            stream_type=self.stream_type,
            stream_id=self.stream_id,
            stream_version=self.stream_version,
            event_type=self.event_type,
            schema_version=self.schema_version,
            occurred_at=self.occurred_at,
            recorded_at=self.recorded_at,
            data=self.data,
            metadata=self.metadata,
            position=self.position,
            hash=self.chain_hash,
        )

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


class Implausible(Exception):
    """Raised by a handler for an authentic event it must not apply (it contradicts what the
    consumer holds, or exceeds what the upstream told it): the event is quarantined."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_METADATA_HEADERS = {
    "actor": "ce_actor",
    "organisation": "ce_organisation",
    "correlation_id": "ce_correlationid",
    "causation_id": "ce_causationid",
    "idempotency_key": "ce_idempotencykey",
}


def _hex(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value else None


def header_map(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}


# the feed's field of each CloudEvents header a relay sets (shared/record_headers.py)
_FEED_FIELDS = {
    "event_id": "ce_id",
    "position": "ce_position",
    "event_type": "ce_type",
    "stream_id": "ce_subject",
    "stream_type": "ce_streamtype",
    "schema_version": "ce_schemaversion",
    "occurred_at": "ce_time",
    "recorded_at": "ce_recordedat",
    "hash": "ce_chainhash",
}
_OPTIONAL_FIELDS = {"stream_type", "schema_version", "recorded_at", "hash"}


def parse_record(record: ConsumerRecord[bytes, bytes], *, upstream: str) -> Incoming:
    """The message as an Incoming of `upstream`: the service whose topic it came from (never
    a header of the message). Its event is read as the feed's (parse_feed_event), from the
    headers and the value; what only a message carries is added to it."""
    headers = header_map(record)
    try:
        data = json.loads(record.value or b"")
        if not isinstance(data, dict):
            raise Unparseable("the value is not a JSON object")
        signature = headers.get("ce_signature")
        redaction = json.loads(headers["ce_redaction"]) if headers.get("ce_redaction") else None
        if redaction is not None and not isinstance(redaction, dict):
            raise Unparseable("the ce_redaction header is not a JSON object")
        # a missing header that every message has: KeyError naming it
        as_feed = {
            field: headers[h]
            for field, h in _FEED_FIELDS.items()
            if h in headers or field not in _OPTIONAL_FIELDS
        }
        event = parse_feed_event(
            upstream,
            {
                **as_feed,
                "stream_version": headers.get("ce_streamversion", "0"),
                "data": data,
                "metadata": {k: headers.get(h) or None for k, h in _METADATA_HEADERS.items()},
                "redaction": redaction,
            },
        )
        return dataclasses.replace(
            event,
            previous_hash=_hex(headers.get("ce_prevhash")),
            signature=base64.b64decode(signature, validate=True) if signature else None,
            signing_key=headers.get("ce_signingkey") or None,
            lane_previous=_hex(headers.get("ce_laneprev")),
            partition=record.partition,
            size=len(record.value or b""),
            raw_data=record.value,
        )
    except Unparseable:
        raise
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
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
        stream_type=raw.get("stream_type", ""),
        schema_version=int(raw.get("schema_version", 1)),
        recorded_at=datetime.fromisoformat(raw["recorded_at"]) if raw.get("recorded_at") else None,
        metadata=Metadata.from_dict(meta),
        chain_hash=_hex(raw.get("hash")),
        redaction=raw["redaction"] if isinstance(raw.get("redaction"), Mapping) else None,
    )
