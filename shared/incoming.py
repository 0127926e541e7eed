"""What a consumer receives from another service, whichever path brought it (Kafka or feed)."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from shared.chain import MAX_DEPTH
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
    """A message that is no upstream's event as published: it cannot be read, or a value of it
    lies beyond what an upstream can write (dead-lettered, never applied). `field`: the field
    of the event at fault, when one is."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.field = field


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
    headers and the value; what only a message carries is added to it. Whatever reading it
    raises (invalid UTF-8 or JSON, JSON nested too deep for the parser or deeper than an
    upstream's log holds, a number beyond its column) is Unparseable, naming what broke."""
    headers = header_map(record)
    try:
        data = json.loads(record.value or b"")
        if not isinstance(data, dict):
            raise Unparseable("the value is not a JSON object")
        if _nested_too_deep(record.value or b"", data):
            raise Unparseable(f"the value is nested more than {MAX_DEPTH} deep")
        signature = headers.get("ce_signature")
        redacted = headers.get("ce_redaction")
        redaction = json.loads(redacted) if redacted else None
        if redaction is not None and not isinstance(redaction, dict):
            raise Unparseable("the ce_redaction header is not a JSON object")
        if redacted and _nested_too_deep(redacted.encode(), redaction):
            raise Unparseable(f"the ce_redaction header is nested more than {MAX_DEPTH} deep")
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
    except Unparseable as exc:
        if exc.field is None:
            raise
        header = _HEADERS.get(exc.field, exc.field)
        raise Unparseable(f"cannot parse the message: header {header}: {exc}") from exc
    except Exception as exc:
        # whatever reading raises is the message's fault: RecursionError (nested too deep for
        # the parser), ValueError (an integer of over 4300 digits), UnicodeDecodeError,
        # KeyError (a missing header), binascii.Error (base64), ...
        if isinstance(exc, RecursionError):
            raise Unparseable("cannot parse the message: it is nested too deep to read") from None
        raise Unparseable(f"cannot parse the message: {_short(repr(exc))}") from exc


# the header of each field a message's event is read from (to name a bad one)
_HEADERS = {**_FEED_FIELDS, "stream_version": "ce_streamversion"}
# what an upstream's columns hold: positions are bigint (from 1), versions integer
MAX_POSITION = 2**63 - 1
MAX_VERSION = 2**31 - 1
_WHOLE = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() would take any script's


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def whole(value: object, field: str, *, low: int, high: int) -> int:
    """A whole number of an event (its text of ASCII digits, or a JSON integer), within the
    bounds of the column that holds it; else Unparseable naming `field`."""
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unparseable(f"{field} is not a whole number: {_short(repr(value), 60)}", field=field)
    if not low <= value <= high:
        shown = _short(str(value), 60)
        raise Unparseable(f"{field} {shown} is out of range (from {low} to {high})", field=field)
    return value


def instant(value: object, field: str) -> datetime:
    """An instant of an event: ISO 8601 with its offset, within the years 1 to 9999 in UTC."""
    if not isinstance(value, str):
        raise Unparseable(f"{field} is not an instant: {_short(repr(value), 60)}", field=field)
    try:
        found = datetime.fromisoformat(value)
        if found.tzinfo is None:
            raise ValueError("no offset")
        found.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise Unparseable(
            f"{field} is not an instant with its offset: {exc}", field=field
        ) from None
    return found


def _nested_too_deep(raw: bytes, value: Any) -> bool:
    """Whether parsed JSON nests deeper than an upstream's log holds (chain.MAX_DEPTH), walked
    without recursion, and only when its text has enough brackets to."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        if items and depth >= MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in items)
    return False


def parse_feed_event(upstream: str, raw: Mapping[str, Any]) -> Incoming:
    meta = raw.get("metadata") or {}
    return Incoming(
        upstream=upstream,
        event_id=uuid.UUID(raw["event_id"]),
        position=whole(raw["position"], "position", low=1, high=MAX_POSITION),
        event_type=raw["event_type"],
        stream_id=raw["stream_id"],
        stream_version=whole(raw["stream_version"], "stream_version", low=0, high=MAX_VERSION),
        occurred_at=instant(raw["occurred_at"], "occurred_at"),
        data=raw["data"],
        correlation_id=meta.get("correlation_id"),
        organisation=meta.get("organisation"),
        stream_type=raw.get("stream_type", ""),
        schema_version=whole(
            raw.get("schema_version", 1), "schema_version", low=1, high=MAX_VERSION
        ),
        recorded_at=instant(raw["recorded_at"], "recorded_at") if raw.get("recorded_at") else None,
        metadata=Metadata.from_dict(meta),
        chain_hash=_hex(raw.get("hash")),
        redaction=raw["redaction"] if isinstance(raw.get("redaction"), Mapping) else None,
    )
