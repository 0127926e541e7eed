"""What a webhook subscriber's key sees of a shipments event: the convoy timeline's rule.

A convoy's event reaches a key only if `auth.require_read` lets it read the convoy (its
origin, recipient, carrier, donors of lines on board; auditors and administrators), with its
data cut by `auth.seen_by` as the timeline cuts it; parties as the read model holds them
when the event is delivered, as the API answers then; the persons the reader may see opened
(or `(erased)`), as the API shows them. Other events (checkpoints, key changes)
reach the feed's readers only (shared/webhooks.py)."""

from __future__ import annotations

import json

import asyncpg

from services.shipments import auth, queries
from services.shipments.handlers.repositories import CONVOYS
from shared.auth import Principal
from shared.events import RecordedEvent
from shared.webhooks import Seen

NOTHING = Seen(frozenset(), None)


async def seen(conn: asyncpg.Connection, reader: Principal, event: RecordedEvent) -> Seen:
    if event.stream_type != CONVOYS.stream_type:
        return NOTHING
    convoy_id = CONVOYS.record_id(event.stream_id)
    row = await conn.fetchrow(
        "SELECT origin_id, destination_id, carrier_id, donors, document FROM convoys"
        " WHERE convoy_id = $1",
        convoy_id,
    )
    if row is None:
        return NOTHING
    parties = queries.parties_of(row)
    if not (auth.reads_everything(reader) or reader.organisation in parties.involved):
        return Seen(parties.involved, None)
    donors = auth.line_donors(json.loads(row["document"]))
    data = auth.seen_by(reader, parties, event.data, donors=donors)
    return Seen(parties.involved, await auth.revealed(conn, data))
