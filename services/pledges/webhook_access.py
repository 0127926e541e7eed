"""What a webhook subscriber's key sees of a pledges event: the API's rule for needs and pledges.

Every key reads needs and pledges; internal notes and contacts only for the organisations
concerned (a need's recipient; a pledge's donor and recipient) and those who read everything
(`access.viewer`, `queries.sees_internal`), so they are cut from the event's data, revisions
included, for anyone else. Other events (checkpoints, key changes) reach the feed's readers
only (shared/webhooks.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from services.pledges import queries
from services.pledges.api import access
from services.pledges.events import STREAM_NEED, STREAM_PLEDGE
from shared.auth import Principal
from shared.events import RecordedEvent
from shared.webhooks import Seen

NOTHING = Seen(frozenset(), None)
INTERNAL = ("internal_note", "contact")


def _without_internal(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in INTERNAL}
    for key in ("changes", "previous"):  # a need's revision: field -> value
        if isinstance(out.get(key), Mapping):
            out[key] = {k: v for k, v in out[key].items() if k not in INTERNAL}
    return out


async def seen(conn: asyncpg.Connection, reader: Principal, event: RecordedEvent) -> Seen:
    parties: tuple[str, ...]
    if event.stream_type == STREAM_NEED:
        row = await conn.fetchrow(
            "SELECT recipient_id FROM needs WHERE need_id = $1",
            event.stream_id.removeprefix(f"{STREAM_NEED}-"),
        )
        parties = (row["recipient_id"],) if row else ()
    elif event.stream_type == STREAM_PLEDGE:
        row = await conn.fetchrow(
            "SELECT donor_id, recipient_id FROM pledges WHERE pledge_id = $1",
            event.stream_id.removeprefix(f"{STREAM_PLEDGE}-"),
        )
        parties = (row["donor_id"], row["recipient_id"]) if row else ()
    else:
        return NOTHING
    if not parties:
        return NOTHING
    internal = queries.sees_internal(access.viewer(reader), *parties)
    return Seen(frozenset(parties), event.data if internal else _without_internal(event.data))
