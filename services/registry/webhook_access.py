"""What a webhook subscriber's key sees of a registry event: the API's rule for organisations
and partnerships.

Every key reads organisations and partnerships; an organisation's contacts only the
organisation itself and registry administrators (as GET /v1/organisations/{id} shows them),
so they are cut from the event's data (a contacts change, a correction) for anyone else. Other
events (checkpoints, key changes) reach the feed's readers only (shared/webhooks.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from services.registry.auth import sees_contacts
from services.registry.events import CODEC, STREAM_ORGANISATION, STREAM_PARTNERSHIP
from shared.auth import Principal
from shared.events import RecordedEvent
from shared.webhooks import Seen

NOTHING = Seen(frozenset(), None)


def _without_contacts(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "contacts"}
    for key in ("changes", "previous"):  # a correction: field -> value
        if isinstance(out.get(key), Mapping):
            out[key] = {k: v for k, v in out[key].items() if k != "contacts"}
    return out


async def seen(conn: asyncpg.Connection, reader: Principal, event: RecordedEvent) -> Seen:
    del conn  # the event names its organisations
    # the organisations from the typed payload; the data sent is the stored form's JSON
    if event.stream_type == STREAM_ORGANISATION:
        organisation = CODEC.decode(event).payload.organisation_id
        data = event.data if sees_contacts(reader, organisation) else _without_contacts(event.data)
        return Seen(frozenset({organisation}), data)
    if event.stream_type == STREAM_PARTNERSHIP:
        return Seen(frozenset(CODEC.decode(event).payload.organisations), event.data)
    return NOTHING
