"""What a webhook subscriber's key sees of a registry event: the API's rule for organisations
and partnerships.

Every key reads organisations and partnerships; an organisation's contacts only the
organisation itself and registry administrators (as GET /v1/organisations/{id} shows them),
so they are cut from the event's data (a contacts change, a correction) for anyone else. Other
events (checkpoints, key changes) reach the feed's readers only (shared/webhooks.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.registry.auth import sees_contacts
from services.registry.events import CODEC, STREAM_ORGANISATION, STREAM_PARTNERSHIP
from shared.auth import Principal
from shared.codec import UndecodableEvent
from shared.events import RecordedEvent
from shared.webhooks import Seen

NOTHING = Seen(frozenset(), None)
STREAMS = (STREAM_ORGANISATION, STREAM_PARTNERSHIP)
log = logging.getLogger("twinaid.registry")


def _without_contacts(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "contacts"}
    for key in ("changes", "previous"):  # a correction: field -> value
        if isinstance(out.get(key), Mapping):
            out[key] = {k: v for k, v in out[key].items() if k != "contacts"}
    return out


async def seen(conn: asyncpg.Connection, reader: Principal, event: RecordedEvent) -> Seen:
    del conn  # the event names its organisations
    # the organisations from the typed payload; the data sent is the stored form's JSON. An
    # event this code cannot read is seen by no subscriber (logged), never stops the others.
    if event.stream_type not in STREAMS:
        return NOTHING
    try:
        payload = CODEC.decode(event).payload
    except UndecodableEvent as exc:
        log.error("webhooks: %s is sent to no subscriber: %s", event.event_id, exc.detail)
        return NOTHING
    if event.stream_type == STREAM_ORGANISATION:
        organisation = payload.organisation_id
        data = event.data if sees_contacts(reader, organisation) else _without_contacts(event.data)
        return Seen(frozenset({organisation}), data)
    return Seen(frozenset(payload.organisations), event.data)
