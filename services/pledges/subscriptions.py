"""Reactions to other services' events: {upstream: {event type: handler}}.

Registry events keep the local directory of organisations and partnerships. A confirmed
delivery from shipments counts towards the pledge lines it names, once per (convoy, manifest
line), whatever order it arrives in; an unknown event type is ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from services.pledges import domain, handlers, partnerships
from shared import directory
from shared.consumer import Handler, Incoming

ACTOR = "pledges-consumer"
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


async def delivery_confirmed(conn: asyncpg.Connection, event: Incoming) -> None:
    delivery = _Delivery.model_validate(event.data)
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
                confirmed_by=_only(delivery.confirmed_by, "name", "role"),
                document=_only(delivery.document, "name", "sha256"),
            )
        )
        correlation_ids.setdefault(line.pledge_id, line.correlation_id)
    await handlers.record_deliveries(
        conn,
        by_pledge,
        correlation_ids=correlation_ids,
        caused=event.caused(actor=ACTOR),
        occurred_at=event.occurred_at,
        now=datetime.now(UTC),
    )


HANDLERS: dict[str, dict[str, Handler]] = {
    "registry": {**directory.HANDLERS, **partnerships.HANDLERS},
    "shipments": {"shipments.delivery-confirmed": delivery_confirmed},
}
