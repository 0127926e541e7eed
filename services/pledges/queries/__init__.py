"""Pledges read side: needs with their coverage, pledges with their progress.

`viewer` is the caller's organisation, or None for those who read everything (auditors and
administrators). Internal notes and contacts are shown only to the organisations concerned
(the recipient of a need; the donor and the recipient of a pledge) and to those who read all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.pledges import auth, domain, privacy
from services.pledges import events as ev
from services.pledges.projections.needs import revision
from shared.codec import Event
from shared.errors import NotFound
from shared.read_directory import names as names  # re-exported: the api names them too
from shared.read_pages import keyset_page
from shared.read_recent import RECENT as RECENT
from shared.read_recent import recent as recent

fmt = domain.quantities.fmt


def amount_json(amount: int, currency: str) -> dict[str, Any]:
    """An amount in minor units with its currency and as formatted in major units."""
    return {
        "amount": amount,
        "currency": currency,
        "formatted": domain.money.format_minor(amount, currency),
    }


def figure(value: Decimal | int, *, unit: str | None) -> str | int:
    """A quantity (a need with a unit) as its decimal string, an amount as integer minor units."""
    return fmt(Decimal(value)) if unit is not None else int(value)


def _need(row: asyncpg.Record, org_names: dict[str, str], viewer: str | None) -> dict[str, Any]:
    unit, currency = row["unit"], row["currency"]

    def f(value: Decimal) -> str | int:
        return figure(value, unit=unit)

    target = (
        {"quantity": f(row["target"]), "unit": unit}
        if unit
        else amount_json(int(row["target"]), currency)
    )
    out: dict[str, Any] = {
        "need_id": row["need_id"],
        "recipient_id": row["recipient_id"],
        "recipient_name": org_names.get(row["recipient_id"]),
        "kind": row["kind"],
        "category": row["category"],
        "description": row["description"],
        "target": target,
        "priority": row["priority"],
        "serves": list(row["serves"]),
        "deadline": row["deadline"].isoformat() if row["deadline"] else None,
        "status": row["status"],
        "coverage": {
            "pledged": f(row["pledged"]),
            "committed": f(row["committed"]),
            "delivered": f(row["delivered"]),
            "gap": f(row["gap"]),
        },
        "revisions": recent(revisions := json.loads(row["revisions"])),
        "revisions_total": len(revisions),
        "end_reason": row["end_reason"],
        "posted_at": row["posted_at"].isoformat(),
        "version": row["version"],
        "correlation_id": row["correlation_id"],
    }
    if auth.sees_internal(viewer, row["recipient_id"]):
        out["internal_note"] = row["internal_note"]
        out["contact"] = json.loads(row["contact"]) if row["contact"] else None
    return out


async def need(conn: asyncpg.Connection, need_id: str, *, viewer: str | None) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM needs WHERE need_id = $1", need_id)
    if row is None:
        raise NotFound(f"need {need_id} does not exist")
    out = _need(row, await names(conn, [row["recipient_id"]]), viewer)
    await privacy.shown_contacts(conn, [out])  # sealed in the read model: opened for the viewer
    return out


def _target(state: domain.Need) -> dict[str, Any]:
    """The need's target as its events state it: a quantity in a unit, or an amount in a
    currency; any other mix (never written by this code) shown as it is."""
    if state.unit is not None and state.quantity is not None:
        return {"quantity": fmt(state.quantity), "unit": state.unit.value}
    if state.amount is not None and state.currency is not None:
        return amount_json(state.amount, state.currency)
    return {
        "quantity": fmt(state.quantity) if state.quantity is not None else None,
        "unit": state.unit.value if state.unit is not None else None,
        "amount": state.amount,
        "currency": state.currency,
    }


async def need_as_of(
    conn: asyncpg.Connection,
    state: domain.Need,
    history: Sequence[Event[Any]],
    *,
    as_of: datetime,
    viewer: str | None,
) -> dict[str, Any]:
    """The need as its recipient had stated it at `as_of` (`state`, folded from `history`, its
    events up to then), in the keys of the current read.

    Coverage is not kept per instant (the reports give it for a period), so `coverage` is null
    and `status` is null for a need still active then, closed or cancelled if it had ended;
    `state` (active, closed, cancelled) says which. Raises NotFound if it was not posted by then
    (even if the log holds a change dated earlier, as an older version let it be written).
    """
    if state.posted_at is None:  # no posting by then: only changes dated before it
        raise NotFound(f"need {state.need_id} does not exist")
    revisions: list[dict[str, Any]] = []
    end_reason: str | None = None
    for event in history:
        match event.payload:
            case ev.NeedRevised() as p:
                revisions.append(revision(p, event.occurred_at))
            case ev.NeedClosed() | ev.NeedCancelled() as p:
                end_reason = p.reason
    ended = state.state is not domain.NeedState.ACTIVE
    org_names = await names(conn, [state.recipient_id])
    out: dict[str, Any] = {
        "need_id": state.need_id,
        "recipient_id": state.recipient_id,
        "recipient_name": org_names.get(state.recipient_id),
        "kind": state.kind.value,
        "category": state.category,
        "description": state.description,
        "target": _target(state),
        "priority": state.priority.value,
        "serves": list(state.serves),
        "deadline": state.deadline.isoformat() if state.deadline else None,
        "status": state.state.value if ended else None,
        "coverage": None,
        "revisions": recent(revisions),
        "revisions_total": len(revisions),
        "end_reason": end_reason,
        "posted_at": state.posted_at.isoformat(),
        "version": state.version,
        "correlation_id": state.correlation_id,
        "state": state.state.value,
        "as_of": as_of.isoformat(),
    }
    if auth.sees_internal(viewer, state.recipient_id):
        out["internal_note"] = state.internal_note
        out["contact"] = await privacy.shown_contact(conn, state.contact)
    return out


async def needs(
    conn: asyncpg.Connection,
    *,
    recipient: str | None,
    status: str | None,
    category: str | None,
    priority: str | None,
    cursor: str | None,
    limit: int,
    viewer: str | None,
) -> dict[str, Any]:
    """Newest first."""
    items, next_cursor = await keyset_page(
        conn,
        """
        SELECT * FROM needs
        WHERE ($1::text IS NULL OR recipient_id = $1) AND ($2::text IS NULL OR status = $2)
          AND ($3::text IS NULL OR category = $3) AND ($4::text IS NULL OR priority = $4)
          AND ($5::timestamptz IS NULL OR (posted_at, need_id) < ($5, $6))
        ORDER BY posted_at DESC, need_id DESC LIMIT $7
        """,
        (recipient, status, category, priority),
        cursor=cursor,
        limit=limit,
        key=(("posted_at", datetime), ("need_id", str)),
    )
    org_names = await names(conn, [r["recipient_id"] for r in items])
    answers = [_need(r, org_names, viewer) for r in items]
    await privacy.shown_contacts(conn, answers)  # only the viewer's own needs carry one
    return {"items": answers, "next_cursor": next_cursor}


def _line_summary(row: asyncpg.Record, pledge_status: str) -> dict[str, Any]:
    """A line of a pledge whose status is `pledge_status`, what is still due of it as
    domain.due counts it (the pledge view's, the reports')."""
    base = {
        "line_id": row["line_id"],
        "kind": row["kind"],
        "need_id": row["need_id"],
        "item": row["item"],
        "category": row["category"],
    }
    if row["kind"] == "money":
        return {
            **base,
            "amount": row["amount"],
            "currency": row["currency"],
            "received": row["received"],
            "outstanding": domain.due(
                size=row["amount"], arrived=row["received"], pledge_status=pledge_status
            ),
        }
    return {
        **base,
        "quantity": fmt(row["quantity"]),
        "unit": row["unit"],
        "delivered": fmt(row["delivered"]),
        "remaining": fmt(
            domain.due(size=row["quantity"], arrived=row["delivered"], pledge_status=pledge_status)
        ),
    }


async def pledges(
    conn: asyncpg.Connection,
    *,
    donor: str | None,
    recipient: str | None,
    status: str | None,
    need_id: str | None,
    partnership_id: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """Newest first, each with a summary of its lines (no internal notes: GET one for them)."""
    items, next_cursor = await keyset_page(
        conn,
        """
        SELECT * FROM pledges p
        WHERE ($1::text IS NULL OR donor_id = $1) AND ($2::text IS NULL OR recipient_id = $2)
          AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR partnership_id = $4)
          AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM pledge_lines l
                                           WHERE l.pledge_id = p.pledge_id AND l.need_id = $5))
          AND ($6::timestamptz IS NULL OR (made_at, pledge_id) < ($6, $7))
        ORDER BY made_at DESC, pledge_id DESC LIMIT $8
        """,
        (donor, recipient, status, partnership_id, need_id),
        cursor=cursor,
        limit=limit,
        key=(("made_at", datetime), ("pledge_id", str)),
    )
    ids = [r["pledge_id"] for r in items]
    lines = await conn.fetch(
        "SELECT * FROM pledge_lines WHERE pledge_id = ANY($1) ORDER BY pledge_id, ordinal", ids
    )
    org_names = await names(conn, [o for r in items for o in (r["donor_id"], r["recipient_id"])])
    return {
        "items": [
            {
                "pledge_id": r["pledge_id"],
                "donor_id": r["donor_id"],
                "donor_name": org_names.get(r["donor_id"]),
                "recipient_id": r["recipient_id"],
                "recipient_name": org_names.get(r["recipient_id"]),
                "partnership_id": r["partnership_id"],
                "description": r["description"],
                "status": r["status"],
                "made_at": r["made_at"].isoformat(),
                "version": r["version"],
                "lines": [
                    _line_summary(x, r["status"]) for x in lines if x["pledge_id"] == r["pledge_id"]
                ],
            }
            for r in items
        ],
        "next_cursor": next_cursor,
    }


async def partnership(
    conn: asyncpg.Connection, partnership_id: str
) -> domain.PartnershipRef | None:
    """The registry's partnership as this service's copy holds it
    (subscriptions/partnerships.py)."""
    row = await conn.fetchrow(
        "SELECT org_a, org_b, status, programme FROM partnership_directory"
        " WHERE partnership_id = $1",
        partnership_id,
    )
    if row is None:
        return None
    return domain.PartnershipRef(
        partnership_id=partnership_id,
        organisations=(row["org_a"], row["org_b"]),
        status=row["status"],
        programme=row["programme"],
    )
