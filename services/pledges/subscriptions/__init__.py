"""Reactions to other services' events: {upstream: {event type: handler}}.

Registry events keep the local directory of organisations and partnerships. Shipments' loaded
and unloaded manifest lines, cancelled convoys and convoys closed with everything on board lost
keep what each convoy carries (convoy_lines: an amendment cannot go below what convoys carry
undelivered); a confirmed delivery
counts towards the pledge lines it names, once per (convoy, manifest line), and only for a line
loaded on its convoy, never more than was loaded (else it is quarantined: Implausible); an
unknown event type is ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from services.pledges import commands, domain, handlers, privacy, projections
from services.pledges.subscriptions import partnerships
from shared import api_keys, directory
from shared.consumer import Handler, Incoming
from shared.incoming import Implausible
from shared.repository import PostgresUnitOfWork

ACTOR = "pledges-consumer"
MANIFEST_LINE_LOADED = "shipments.manifest-line-loaded"
MANIFEST_LINE_UNLOADED = "shipments.manifest-line-unloaded"
CONVOY_CANCELLED = "shipments.convoy-cancelled"
CONVOY_CLOSED = "shipments.convoy-closed"
Figure = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _DeliveryLine(_Tolerant):
    manifest_line_id: str
    pledge_id: str
    line_id: str
    unit: str
    loaded: Figure
    received: Figure
    damaged: Figure = Decimal(0)
    short: Figure = Decimal(0)
    lost: Figure = Decimal(0)
    correlation_id: str | None = None


class _Delivery(_Tolerant):
    """The fields of `shipments.delivery-confirmed` that pledges reads."""

    convoy_id: str
    recipient_id: str | None = None
    confirmed_by: dict[str, Any] | None = None
    document: dict[str, Any] | None = None
    lines: list[_DeliveryLine]


def _only(raw: dict[str, Any] | None, *fields: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    return {f: raw.get(f) for f in fields}


class _Loaded(_Tolerant):
    """The fields of `shipments.manifest-line-loaded` (and -unloaded) that pledges reads."""

    convoy_id: str
    manifest_line_id: str
    pledge_id: str
    line_id: str
    unit: str = ""
    quantity: Figure


async def manifest_line_loaded(conn: asyncpg.Connection, event: Incoming) -> None:
    line = _Loaded.model_validate(event.data)
    await conn.execute(
        "INSERT INTO convoy_lines (convoy_id, manifest_line_id, pledge_id, line_id, unit,"
        " loaded, source_position) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (convoy_id, manifest_line_id) DO UPDATE SET pledge_id = excluded.pledge_id,"
        " line_id = excluded.line_id, unit = excluded.unit, loaded = excluded.loaded,"
        " source_position = excluded.source_position",
        line.convoy_id,
        line.manifest_line_id,
        line.pledge_id,
        line.line_id,
        line.unit,
        line.quantity,
        event.position,
    )


async def manifest_line_unloaded(conn: asyncpg.Connection, event: Incoming) -> None:
    line = _Loaded.model_validate(event.data)
    await conn.execute(
        "UPDATE convoy_lines SET loaded = greatest(loaded - $3, 0), source_position = $4"
        " WHERE convoy_id = $1 AND manifest_line_id = $2",
        line.convoy_id,
        line.manifest_line_id,
        line.quantity,
        event.position,
    )


class _Released(_Tolerant):
    manifest_line_id: str
    quantity: Figure


class _Cancelled(_Tolerant):
    """The fields of `shipments.convoy-cancelled` that pledges reads."""

    convoy_id: str
    released: list[_Released]


async def convoy_cancelled(conn: asyncpg.Connection, event: Incoming) -> None:
    """A cancelled convoy gives back what it held of each line, as unloading does."""
    cancelled = _Cancelled.model_validate(event.data)
    for line in cancelled.released:
        await conn.execute(
            "UPDATE convoy_lines SET loaded = greatest(loaded - $3, 0), source_position = $4"
            " WHERE convoy_id = $1 AND manifest_line_id = $2",
            cancelled.convoy_id,
            line.manifest_line_id,
            line.quantity,
            event.position,
        )


class _Closed(_Tolerant):
    """The fields of `shipments.convoy-closed` that pledges reads."""

    convoy_id: str
    outcome: str


async def convoy_closed(conn: asyncpg.Connection, event: Incoming) -> None:
    """A convoy closed with everything on board lost (no delivery will ever come: shipments closes
    a convoy only once delivered, or once all it held was lost) gives back what it held, as
    cancelling does. Closed after its delivery: nothing to give back, the delivery counts."""
    closed = _Closed.model_validate(event.data)
    if closed.outcome != "lost":
        return
    await conn.execute(
        "UPDATE convoy_lines SET loaded = 0, source_position = $2 WHERE convoy_id = $1",
        closed.convoy_id,
        event.position,
    )


async def _plausible(conn: asyncpg.Connection, delivery: _Delivery) -> None:
    """Raises Implausible unless each line of the delivery was loaded on its convoy, for the
    pledge line it names, and claims no more than was loaded."""
    for line in delivery.lines:
        known = await conn.fetchrow(
            "SELECT pledge_id, line_id, loaded FROM convoy_lines"
            " WHERE convoy_id = $1 AND manifest_line_id = $2",
            delivery.convoy_id,
            line.manifest_line_id,
        )
        where = f"convoy {delivery.convoy_id}, manifest line {line.manifest_line_id}"
        if known is None:
            raise Implausible(f"{where}: shipments never said it was loaded")
        if (known["pledge_id"], known["line_id"]) != (line.pledge_id, line.line_id):
            raise Implausible(
                f"{where} carries {known['pledge_id']}/{known['line_id']},"
                f" not {line.pledge_id}/{line.line_id}"
            )
        claimed = max(line.loaded, line.received + line.damaged)
        if claimed > known["loaded"]:
            raise Implausible(
                f"{where}: {claimed} delivered or loaded, but {known['loaded']} were loaded"
            )


async def delivery_confirmed(conn: asyncpg.Connection, event: Incoming) -> None:
    delivery = _Delivery.model_validate(event.data)
    await _plausible(conn, delivery)
    # who signed: v2 sealed by shipments, kept as it came (erasure there reaches it); v1 in
    # clear, sealed here as the recipient records them (services/pledges/privacy.py)
    confirmed_by = await privacy.sealed_confirmed_by(
        conn, delivery.confirmed_by, recipient_id=delivery.recipient_id, now=datetime.now(UTC)
    )
    by_pledge: dict[str, list[domain.DeliveredLine]] = {}
    correlation_ids: dict[str, str | None] = {}
    for line in delivery.lines:
        by_pledge.setdefault(line.pledge_id, []).append(
            domain.DeliveredLine(
                convoy_id=delivery.convoy_id,
                manifest_line_id=line.manifest_line_id,
                delivery_event_id=str(event.event_id),
                line_id=line.line_id,
                unit=line.unit,
                loaded=line.loaded,
                received=line.received,
                damaged=line.damaged,
                short=line.short,
                lost=line.lost,
                recipient_id=delivery.recipient_id,
                confirmed_by=confirmed_by,
                document=_only(delivery.document, "name", "sha256"),
            )
        )
        correlation_ids.setdefault(line.pledge_id, line.correlation_id)
    command = commands.RecordDelivery(
        delivered=by_pledge, correlation_ids=correlation_ids, occurred_at=event.occurred_at
    )
    caused = event.caused(actor=ACTOR)
    uow = PostgresUnitOfWork(conn, projections.ALL, caused, datetime.now(UTC))
    await handlers.HANDLERS.handle(command, uow)


HANDLERS: dict[str, dict[str, Handler]] = {
    # the registry's organisations, partnerships and API keys (issued, rotated, revoked)
    "registry": {**directory.HANDLERS, **partnerships.HANDLERS, **api_keys.HANDLERS},
    "shipments": {
        MANIFEST_LINE_LOADED: manifest_line_loaded,
        MANIFEST_LINE_UNLOADED: manifest_line_unloaded,
        CONVOY_CANCELLED: convoy_cancelled,
        CONVOY_CLOSED: convoy_closed,
        "shipments.delivery-confirmed": delivery_confirmed,
    },
}
