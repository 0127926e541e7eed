"""Facts the pledges service records, with the JSON Schema of each (see schemas/).

Quantities are decimals written as JSON strings ("13000", "12.5"); amounts are integers in the
minor unit of an ISO 4217 currency. Names are stable; a changed shape gets a new schema version
and an upcaster (older.py): bump the model's SCHEMA_VERSION (payloads.py), keep the previous
model in PREVIOUS, register the upcaster from it, regenerate schemas/. `pledges.pledge-line-updated`
is the contract shipments relies on (docs/cross-service-events.md).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from services.pledges.events.older import *  # noqa: F403
from services.pledges.events.older import PREVIOUS as PREVIOUS
from services.pledges.events.older import READ, UPCASTERS
from services.pledges.events.payloads import *  # noqa: F403
from services.pledges.events.payloads import SCHEMAS
from shared.codec import EventCodec, event_type_of
from shared.events import NewEvent


def new(event: BaseModel, *, occurred_at: datetime | None = None) -> NewEvent:
    """An event to append: its model's type and schema version, its data as JSON."""
    event_type, version = event_type_of(type(event))
    return NewEvent(event_type, event.model_dump(mode="json"), occurred_at, version)


# Every stored event decoded into its model: readers match on the payload's type
CODEC = EventCodec(
    [READ.get(event_type, model) for event_type, model in SCHEMAS.items()], upcasters=UPCASTERS
)

# a stored event's payload, decoded and known to be a given model (TypeError otherwise)
decoded = CODEC.payload
