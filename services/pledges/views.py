"""A pledge as JSON, from its folded state: now, or as of an instant (the audit view); a
record's history, a page of its events.

In kind, the recipient's confirmed figure is what shipments reported received in good
condition; money, what the recipient confirmed received. The donor's own figure stands beside
it with the difference, so a gap between what was sent and what arrived is visible.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.pledges import domain, handlers, privacy
from services.pledges import events as ev
from services.pledges.auth import sees_internal
from services.pledges.queries import amount_json, recent
from shared.repository import Repository
from shared.routes import event_json

fmt = domain.quantities.fmt


def _donor_figure(line: domain.Line) -> dict[str, Any] | None:
    """The donor's figure beside the recipient's confirmed one, and by how much they differ."""
    if line.donor_figure is None:
        return None
    on = line.donor_figure_on.isoformat() if line.donor_figure_on else None
    if line.kind is domain.LineKind.MONEY:
        paid = int(line.donor_figure)
        return {"figure": paid, "reported_on": on, "difference": paid - line.received}
    sent = domain.quantities.parse(line.donor_figure)
    return {"figure": fmt(sent), "reported_on": on, "difference": fmt(sent - line.delivered)}


def line_json(line: domain.Line, pledge_status: str) -> dict[str, Any]:
    """A line of a pledge whose status is `pledge_status`: what is still due of it
    (outstanding, remaining) as domain.due counts it, the lists' and the reports' figure."""
    out: dict[str, Any] = {
        "line_id": line.line_id,
        "kind": line.kind.value,
        "need_id": line.need_id,
        "item": line.item,
        "category": line.category,
        "amendments": [
            {"previous": a.previous, "new": a.new, "reason": a.reason}
            for a in recent(line.amendments)
        ],
        "amendments_total": len(line.amendments),
    }
    if line.kind is domain.LineKind.MONEY:
        # a line as its making stated it: one without a currency (never made by this code)
        # shown as it is, unformatted
        amount = (
            amount_json(line.amount, line.currency)
            if line.currency is not None
            else {"amount": line.amount, "currency": None, "formatted": None}
        )
        out |= {
            **amount,
            "recipient_confirmed": line.received,
            "outstanding": line.outstanding_for(pledge_status),
            "receipts": [
                {
                    "amount": r.amount,
                    "received_on": r.received_on.isoformat(),
                    "reference": r.reference,
                }
                for r in recent(line.receipts)
            ],
            "receipts_total": len(line.receipts),
            "donor_reported": _donor_figure(line),
        }
        return out
    out |= {
        "quantity": fmt(line.quantity),
        "unit": line.unit.value if line.unit is not None else None,
        "weight_kg": domain.quantities.fmt_or_none(line.weight_kg),
        "estimated_value": (
            {"amount": line.value_amount, "currency": line.value_currency}
            if line.value_amount is not None
            else None
        ),
        "recipient_confirmed": fmt(line.delivered),
        "damaged": fmt(line.total("damaged")),
        "short": fmt(line.total("short")),
        "lost": fmt(line.total("lost")),
        "remaining": fmt(line.remaining_for(pledge_status)),
        "deliveries": [
            {
                "convoy_id": d.convoy_id,
                "manifest_line_id": d.manifest_line_id,
                "loaded": fmt(d.loaded),
                "received": fmt(d.received),
                "damaged": fmt(d.damaged),
                "short": fmt(d.short),
                "lost": fmt(d.lost),
            }
            for d in recent(line.deliveries)
        ],
        "deliveries_total": len(line.deliveries),
        "donor_reported": _donor_figure(line),
    }
    return out


def pledge_json(
    state: domain.Pledge, *, org_names: dict[str, str], viewer: str | None
) -> dict[str, Any]:
    def at(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    out: dict[str, Any] = {
        "pledge_id": state.pledge_id,
        "donor_id": state.donor_id,
        "donor_name": org_names.get(state.donor_id),
        "recipient_id": state.recipient_id,
        "recipient_name": org_names.get(state.recipient_id),
        "partnership_id": state.partnership_id,
        "description": state.description,
        "status": state.status.value,
        "made_at": at(state.made_at),
        "committed_at": at(state.committed_at),
        "withdrawn_at": at(state.withdrawn_at),
        "withdrawal_reason": state.withdrawal_reason,
        "lines": [line_json(line, state.status.value) for line in state.lines],
        "version": state.version,
        "correlation_id": state.correlation_id,
    }
    if sees_internal(viewer, state.donor_id, state.recipient_id):
        out["internal_note"] = state.internal_note
        out["contact"] = state.contact
    return out


async def history(
    conn: asyncpg.Connection,
    repository: Repository[Any],
    record_id: str,
    *,
    after: int,
    limit: int,
    withheld: bool = False,
) -> dict[str, Any]:
    """A page of a record's events as the history answers them (the versions after `after`,
    at most `limit`, and `next_after` for the next page, None after the last), every person
    opened for those who may see the record's; `withheld`: who signed for a delivery shown
    as a pledge's donor sees it (privacy.receiver_withheld)."""
    # as stored: an event this code cannot decode is still shown as written
    events = await repository.stored(
        handlers.reading(conn), record_id, after_version=after, limit=limit + 1
    )
    page = [event_json(e) for e in events[:limit]]
    if withheld:
        page = [
            {**e, "data": privacy.receiver_withheld(e["data"])}
            if e["event_type"] == ev.DELIVERY_RECORDED
            else e
            for e in page
        ]
    return {
        "events": await privacy.revealed(conn, page),
        "next_after": events[limit - 1].stream_version if len(events) > limit else None,
    }
