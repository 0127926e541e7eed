"""Consumed events, typed: a consumer declares its own small model of each upstream event it
reads (a tolerant reader: the fields it needs, extra fields ignored, the bounds the published
schemas enforce), keyed by (type, version) in an EventCodec (shared/codec.py). When the
upstream writes a new version of an event, the consumer bumps its model's SCHEMA_VERSION (if
what it reads changed) and registers the upcaster from the version before; older events in
the upstream's log keep decoding through it.

    CODEC = EventCodec([Registered, Renamed], upcasters={...})

    async def registered(conn: asyncpg.Connection, event: Incoming) -> None:
        organisation = consumed.read(CODEC, event, Registered)
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from shared.codec import EventCodec
from shared.incoming import Incoming

__all__ = ["Tolerant", "read"]

P = TypeVar("P", bound=BaseModel)


class Tolerant(BaseModel):
    """Base of a consumer's models of upstream events: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def read(codec: EventCodec, event: Incoming, model: type[P]) -> P:
    """The consumed event's payload as `model`, the codec's current model of its type
    (upcast from the version it was written with). UndecodableEvent when it does not decode:
    a handler failure like any other, so the consumer retries it and then parks it as a dead
    letter (a model's validator may raise Implausible itself, for a value the consumer must
    not apply: the event is quarantined). TypeError when `model` is not the codec's model of
    the event's type (a handler bound to the wrong type: a bug). A version newer than the
    model's is read with the model (the upstream moved on first; a revocation must not wait
    for this service's upgrade): it applies if what the model reads still validates."""
    payload = codec.decode_data(event.event_type, event.schema_version, event.data, newer=True)
    if not isinstance(payload, model):
        raise TypeError(f"{event.event_type} decodes to {type(payload).__name__}, not {model}")
    return payload
