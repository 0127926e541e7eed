"""Pledge events -> `pledges`, `pledge_lines`, `receipts` and `deliveries` rows; each change
to a line that answers a need adds the line's new share less its old one to that need's
coverage (projections/needs.py count_changes)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import asyncpg

from services.pledges import domain
from services.pledges import events as ev
from services.pledges.projections.needs import Changes, add_changes, count_changes
from shared.events import RecordedEvent
from shared.projections import Apply


async def pledge_made(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    p = ev.decoded(event, ev.PledgeMadeRead)
    inserted = await conn.fetchval(
        """
        INSERT INTO pledges (pledge_id, donor_id, recipient_id, partnership_id, description,
                             internal_note, contact, status, made_at, correlation_id,
                             changed_at, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, 'pledged', $8, $9, $8, $10)
        ON CONFLICT (pledge_id) DO NOTHING RETURNING true
        """,
        p.pledge_id,
        p.donor_id,
        p.recipient_id,
        p.partnership_id,
        p.description,
        p.internal_note,
        json.dumps(p.contact.model_dump(mode="json") if p.contact else None),
        event.occurred_at,
        event.metadata.correlation_id,
        event.stream_version,
    )
    if not inserted:
        return
    for ordinal, line in enumerate(p.lines):
        await conn.execute(
            """
            INSERT INTO pledge_lines (pledge_id, line_id, ordinal, kind, need_id, item, category,
                                      unit, quantity, weight_kg, value_amount, value_currency,
                                      currency, amount)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric, $10::text::numeric, $11,
                    $12, $13, $14)
            """,
            p.pledge_id,
            line.line_id,
            ordinal,
            line.kind,
            line.need_id,
            line.item,
            line.category,
            line.unit,
            line.quantity,
            line.weight_kg,
            line.value_amount,
            line.value_currency,
            line.currency,
            line.amount,
        )
    await count_changes(conn, p.pledge_id, changes)


async def _advance(
    conn: asyncpg.Connection,
    event: RecordedEvent,
    pledge_id: str,
    status: str | None,
    **also: Any,
) -> bool:
    """The pledge's row at the event's version (False: it was there already); `status` if
    given, and `also` the other columns the event sets, in the same statement."""
    sets = "".join(f", {column} = ${i}" for i, column in enumerate(also, start=5))
    applied = await conn.fetchval(
        "UPDATE pledges SET version = $2, changed_at = greatest(changed_at, $3),"
        f" status = coalesce($4, status){sets} WHERE pledge_id = $1 AND version < $2"
        " RETURNING true",
        pledge_id,
        event.stream_version,
        event.occurred_at,
        status,
        *also.values(),
    )
    return bool(applied)


async def pledge_committed(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    p = ev.decoded(event, ev.PledgeCommitted)
    if await _advance(conn, event, p.pledge_id, "committed", committed_at=event.occurred_at):
        await count_changes(conn, p.pledge_id, changes)


async def pledge_withdrawn(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    p = ev.decoded(event, ev.PledgeWithdrawn)
    at, reason = event.occurred_at, p.reason
    if await _advance(
        conn, event, p.pledge_id, "withdrawn", withdrawn_at=at, withdrawal_reason=reason
    ):
        await count_changes(conn, p.pledge_id, changes)


async def line_amended(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    p = ev.decoded(event, ev.PledgeLineAmended)
    if not await _advance(conn, event, p.pledge_id, None):
        return
    in_kind = p.kind == "in_kind"
    amendment = {
        "occurred_at": event.occurred_at.isoformat(),
        "previous": p.previous_quantity if in_kind else p.previous_amount,
        "new": p.quantity if in_kind else p.amount,
        "reason": p.reason,
    }
    await conn.execute(
        "UPDATE pledge_lines SET quantity = coalesce($3::text::numeric, quantity),"
        " amount = coalesce($4, amount), amendments = amendments || $5::jsonb,"
        " weight_kg = $6::text::numeric WHERE pledge_id = $1 AND line_id = $2",
        p.pledge_id,
        p.line_id,
        p.quantity,
        p.amount,
        json.dumps([amendment]),
        p.weight_kg,
    )
    await _refigure(conn, p.pledge_id, changes)


async def money_received(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    p = ev.decoded(event, ev.MoneyReceived)
    if not await _advance(conn, event, p.pledge_id, None):
        return
    await conn.execute(
        "INSERT INTO receipts (event_id, pledge_id, line_id, amount, currency, received_on,"
        " reference) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event.event_id,
        p.pledge_id,
        p.line_id,
        p.amount,
        p.currency,
        p.received_on,
        p.reference,
    )
    await conn.execute(
        "UPDATE pledge_lines SET received = received + $3 WHERE pledge_id = $1 AND line_id = $2",
        p.pledge_id,
        p.line_id,
        p.amount,
    )
    await _refigure(conn, p.pledge_id, changes)


async def donor_figure(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = ev.decoded(event, ev.DonorFigureReported)
    if not await _advance(conn, event, p.pledge_id, None):
        return
    figure = p.quantity if p.quantity is not None else str(p.amount)
    await conn.execute(
        "UPDATE pledge_lines SET donor_figure = $3, donor_figure_on = $4"
        " WHERE pledge_id = $1 AND line_id = $2",
        p.pledge_id,
        p.line_id,
        figure,
        p.reported_on,
    )


async def delivery_recorded(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    p = ev.decoded(event, ev.DeliveryRecordedRead)
    if not await _advance(conn, event, p.pledge_id, None):
        return
    figures = [p.loaded, p.received, p.damaged, p.short, p.lost]
    await conn.execute(
        """
        INSERT INTO deliveries (event_id, pledge_id, line_id, convoy_id, manifest_line_id, unit,
                                loaded, received, damaged, short, lost, confirmed_by, document,
                                occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8::text::numeric, $9::text::numeric,
                $10::text::numeric, $11::text::numeric, $12::jsonb, $13::jsonb, $14)
        """,
        event.event_id,
        p.pledge_id,
        p.line_id,
        p.convoy_id,
        p.manifest_line_id,
        p.unit,
        *figures,
        json.dumps(p.confirmed_by.model_dump(mode="json") if p.confirmed_by else None),
        json.dumps(p.document.model_dump(mode="json") if p.document else None),
        event.occurred_at,
    )
    await conn.execute(
        """
        UPDATE pledge_lines SET loaded = loaded + $3::text::numeric,
            delivered = delivered + $4::text::numeric, damaged = damaged + $5::text::numeric,
            short = short + $6::text::numeric, lost = lost + $7::text::numeric
        WHERE pledge_id = $1 AND line_id = $2
        """,
        p.pledge_id,
        p.line_id,
        *figures,
    )
    await _refigure(conn, p.pledge_id, changes)


async def _refigure(conn: asyncpg.Connection, pledge_id: str, changes: Changes | None) -> None:
    """The pledge's status from its lines, as its state has it (domain.status_of), once
    something arrived or a line changed (the events carry no status since delivery-recorded 3,
    pledge-line-amended 2 and money-received 2); then what its lines count towards their needs
    (count_changes)."""
    rows = await conn.fetch(
        "SELECT p.committed_at, p.withdrawn_at, l.kind, l.quantity, l.delivered, l.amount,"
        " l.received FROM pledges p JOIN pledge_lines l USING (pledge_id)"
        " WHERE pledge_id = $1",
        pledge_id,
    )
    lines = [
        domain.progress(size=r["amount"], arrived=r["received"])
        if r["kind"] == "money"
        else domain.progress(size=r["quantity"], arrived=r["delivered"])
        for r in rows
    ]
    status = domain.status_of(
        committed=rows[0]["committed_at"] is not None,
        withdrawn=rows[0]["withdrawn_at"] is not None,
        lines=lines,
    )
    await conn.execute(
        "UPDATE pledges SET status = $2 WHERE pledge_id = $1", pledge_id, status.value
    )
    await count_changes(conn, pledge_id, changes)


async def line_updated(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = ev.decoded(event, ev.PledgeLineUpdated)
    await _advance(conn, event, p.pledge_id, None)  # derived from the events beside it


class Counting(Protocol):
    """A handler that also counts its changes to needs: applied alone (an Apply) it counts
    them itself, in a batch it adds them to the batch's."""

    def __call__(
        self, conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None, /
    ) -> Awaitable[None]: ...


# the events that change what a pledge's lines count towards their needs
COUNTING: dict[str, Counting] = {
    ev.PLEDGE_MADE: pledge_made,
    ev.PLEDGE_COMMITTED: pledge_committed,
    ev.PLEDGE_WITHDRAWN: pledge_withdrawn,
    ev.PLEDGE_LINE_AMENDED: line_amended,
    ev.MONEY_RECEIVED: money_received,
    ev.DELIVERY_RECORDED: delivery_recorded,
}
HANDLERS: dict[str, Apply] = {
    **COUNTING,
    ev.DONOR_FIGURE_REPORTED: donor_figure,
    ev.PLEDGE_LINE_UPDATED: line_updated,
}


async def apply_batch(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The events in order, as their handlers apply them, their needs' sums changed once at
    the end: a pledge's request writes its need's row (the one every pledge to that need
    writes) in its last statement, a rebuild once a need a batch."""
    changes: Changes = {}
    for event in events:
        counting = COUNTING.get(event.event_type)
        if counting is not None:
            await counting(conn, event, changes)
        else:
            await HANDLERS[event.event_type](conn, event)
    await add_changes(conn, changes)
