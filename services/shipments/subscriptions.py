"""Reactions to other services' events: {upstream: {event type: handler}}.

From pledges, shipments keeps its own copy of every in-kind pledge line it may load from
(`pledges.pledge-line-updated`, docs/cross-service-events.md). A tolerant reader: it reads only
the fields it needs and ignores the rest. A line's newer announcement (higher position) wins,
so a late or replayed older one changes nothing. The line's commitment instant is the
occurred_at of the first announcement saying `committed` (pledges sends one in the commitment's
transaction, dated as the commitment): no load may be dated before it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from shared import api_keys, directory
from shared.consumer import Handler, Incoming

PLEDGE_LINE_UPDATED = "pledges.pledge-line-updated"


class PledgeLineUpdated(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    pledge_id: str = Field(min_length=1)
    line_id: str = Field(min_length=1)
    donor_id: str = Field(min_length=1)
    recipient_id: str = Field(min_length=1)
    partnership_id: str | None = None
    item: str
    category: str | None = None
    unit: Literal["pieces", "kg", "tonnes", "boxes", "litres"]
    quantity: Decimal = Field(ge=0)
    weight_kg: Decimal | None = Field(default=None, ge=0)
    delivered: Decimal = Field(default=Decimal(0), ge=0)
    remaining: Decimal | None = None
    status: str


async def pledge_line_updated(conn: asyncpg.Connection, event: Incoming) -> None:
    line = PledgeLineUpdated.model_validate(dict(event.data))
    remaining = line.remaining if line.remaining is not None else line.quantity - line.delivered
    # The row lock this upsert takes is the one loads hold: a change of the line waits for
    # a load in flight, and the other way round.
    await conn.execute(
        """
        INSERT INTO pledge_lines (pledge_id, line_id, donor_id, recipient_id, partnership_id,
                                  item, category, unit, quantity, weight_kg, delivered,
                                  remaining, status, correlation_id, source_position, updated_at,
                                  committed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                CASE WHEN $13 = 'committed' THEN $16::timestamptz END)
        ON CONFLICT (pledge_id, line_id) DO UPDATE SET
            donor_id = excluded.donor_id, recipient_id = excluded.recipient_id,
            partnership_id = excluded.partnership_id, item = excluded.item,
            category = excluded.category, unit = excluded.unit, quantity = excluded.quantity,
            weight_kg = excluded.weight_kg, delivered = excluded.delivered,
            remaining = excluded.remaining, status = excluded.status,
            correlation_id = coalesce(excluded.correlation_id, pledge_lines.correlation_id),
            source_position = excluded.source_position, updated_at = excluded.updated_at,
            committed_at = least(pledge_lines.committed_at, excluded.committed_at)
        WHERE pledge_lines.source_position < excluded.source_position
        """,
        line.pledge_id,
        line.line_id,
        line.donor_id,
        line.recipient_id,
        line.partnership_id,
        line.item,
        line.category,
        line.unit,
        line.quantity,
        line.weight_kg,
        line.delivered,
        remaining,
        line.status,
        event.correlation_id,
        event.position,
        event.occurred_at,
    )


HANDLERS: dict[str, dict[str, Handler]] = {
    # the registry's organisations and API keys (issued, rotated, revoked)
    "registry": {**directory.HANDLERS, **api_keys.HANDLERS},
    "pledges": {PLEDGE_LINE_UPDATED: pledge_line_updated},
}
