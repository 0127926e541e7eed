"""What a webhook subscriber's key sees of a pledges event: the API's rule for a record's events.

The API shows a need's or a pledge's events only through its history (`GET /needs/{id}/history`,
`GET /pledges/{id}/history`), to the organisations concerned (a need's recipient; a pledge's
donor and recipient) and those who read everything (auditors, administrators: `auth.viewer`,
`auth.sees_internal`), and answers 403 to anyone else. A subscriber receives a record's
events under the same rule: whole, or not at all. Another organisation reads the record's
current view (GET /needs/{id}, /pledges/{id}), never its events: they hold what no view shows
it (who confirmed a delivery, its document, a donor's note on its figures, internal notes,
contacts). Other events (checkpoints, key changes) reach the feed's readers only
(shared/webhooks.py)."""

from __future__ import annotations

import asyncpg

from services.pledges import auth, handlers, privacy
from services.pledges.events import DELIVERY_RECORDED, STREAM_NEED, STREAM_PLEDGE
from shared.auth import Principal
from shared.events import RecordedEvent
from shared.webhooks import Seen

NOTHING = Seen(frozenset(), None)


async def seen(conn: asyncpg.Connection, reader: Principal, event: RecordedEvent) -> Seen:
    parties: tuple[str, ...]
    if event.stream_type == STREAM_NEED:
        row = await conn.fetchrow(
            "SELECT recipient_id FROM needs WHERE need_id = $1",
            handlers.NEEDS.record_id(event.stream_id),
        )
        parties = (row["recipient_id"],) if row else ()
    elif event.stream_type == STREAM_PLEDGE:
        row = await conn.fetchrow(
            "SELECT donor_id, recipient_id FROM pledges WHERE pledge_id = $1",
            handlers.PLEDGES.record_id(event.stream_id),
        )
        parties = (row["donor_id"], row["recipient_id"]) if row else ()
    else:
        return NOTHING
    if not parties:
        return NOTHING
    # the history's rule (services/pledges/api/needs.py, pledges.py): parties and readers of
    # everything get the events whole, anyone else nothing
    if auth.sees_internal(auth.viewer(reader), *parties):
        if event.event_type == DELIVERY_RECORDED and auth.viewer(reader) not in (
            None,
            parties[-1],
        ):  # a pledge's donor: who signed for the goods withheld, as in the history
            return Seen(frozenset(parties), privacy.receiver_withheld(event.data))
        return Seen(frozenset(parties), event.data)
    return Seen(frozenset(parties), None)
