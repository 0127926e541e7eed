"""What a relay puts on each record it publishes: the event's CloudEvents attributes and
what a consumer needs to check it is its upstream's (shared/authenticity.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from shared import authenticity, privacy_migration, published, signing
from shared.events import RecordedEvent


def headers_for(
    service: str,
    event: RecordedEvent,
    *,
    signer: signing.Signer,
    previous: bytes,
    lane: bytes = authenticity.LANE_START,
    redaction: Mapping[str, Any] | None = None,
) -> tuple[list[tuple[str, bytes]], bytes]:
    """CloudEvents 1.0 binary mode: attributes as `ce_` headers, the data as the value; every
    field the chain hashes, so a consumer can recompute the hash, plus the relay's signature
    of it, the previous position's hash and the lane of its partition before it
    (shared/authenticity.py). An attribute with no value is left out, never sent empty (a
    consumer reads a missing metadata header as null, as the chain hashed it). The metadata
    goes out as stored: what it keeps of a caller's Idempotency-Key is a digest
    (published.idempotency_digest), so the key itself never reaches the broker. Returns the
    headers and the lane after the event."""
    if event.position is None or event.hash is None:
        raise ValueError("only a sealed event is published")
    meta = event.metadata
    attrs: dict[str, str | None] = {
        "ce_specversion": "1.0",
        "ce_id": str(event.event_id),
        "ce_source": f"/twinaid/{service}",
        "ce_type": event.event_type,
        "ce_time": event.occurred_at.astimezone(UTC).isoformat(),
        "ce_subject": event.stream_id,
        "ce_dataschema": published.schema_id(event.event_type, event.schema_version),
        "ce_streamtype": event.stream_type,
        "ce_streamversion": str(event.stream_version),
        "ce_position": str(event.position),
        "ce_schemaversion": str(event.schema_version),
        "ce_recordedat": event.recorded_at.astimezone(UTC).isoformat(),
        "ce_chainhash": event.hash.hex(),
        "ce_correlationid": meta.correlation_id,
        "ce_causationid": meta.causation_id,
        "ce_organisation": meta.organisation,
        "ce_actor": meta.actor,
        "ce_idempotencykey": meta.idempotency_key,
        "content-type": "application/json",
    }
    signed, after = authenticity.signature_headers(
        signer, service, event.position, event.hash, previous, lane
    )
    present = [(k, v.encode()) for k, v in attrs.items() if v is not None]
    if redaction is not None:  # rewritten in place after it was sealed: how it still links
        present.append(privacy_migration.header(redaction))
    return [*present, *signed], after
