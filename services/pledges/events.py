"""Facts the pledges service records, with the JSON Schema of each (see schemas/).

Quantities are decimals written as JSON strings ("13000", "12.5"); amounts are integers in the
minor unit of an ISO 4217 currency. Names are stable; a changed shape gets a new schema version
and an upcaster. `pledges.pledge-line-updated` is the contract shipments relies on
(docs/cross-service-events.md).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STREAM_NEED = "need"
STREAM_PLEDGE = "pledge"

NEED_POSTED = "pledges.need-posted"
NEED_REVISED = "pledges.need-revised"
NEED_CLOSED = "pledges.need-closed"
NEED_CANCELLED = "pledges.need-cancelled"
PLEDGE_MADE = "pledges.pledge-made"
PLEDGE_COMMITTED = "pledges.pledge-committed"
PLEDGE_LINE_AMENDED = "pledges.pledge-line-amended"
PLEDGE_WITHDRAWN = "pledges.pledge-withdrawn"
MONEY_RECEIVED = "pledges.money-received"
DONOR_FIGURE_REPORTED = "pledges.donor-figure-reported"
DELIVERY_RECORDED = "pledges.delivery-recorded"
PLEDGE_LINE_UPDATED = "pledges.pledge-line-updated"

Quantity = Annotated[
    str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", description="a decimal written as a string")
]
Amount = Annotated[int, Field(ge=0, description="minor units of the currency (cents for EUR)")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
UnitName = Literal["pieces", "kg", "tonnes", "boxes", "litres"]
LineKind = Literal["in_kind", "money"]
PledgeStatus = Literal["pledged", "committed", "partly_fulfilled", "fulfilled", "withdrawn"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Event):
    name: str = Field(min_length=1, max_length=200)
    role: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=50)


class NeedPosted(_Event):
    need_id: str
    recipient_id: str
    kind: Literal["item", "money"]
    category: str
    description: str
    quantity: Quantity | None = Field(description="item needs: the quantity sought")
    unit: UnitName | None
    amount: Amount | None = Field(description="money needs: the target")
    currency: Currency | None
    priority: Literal["critical", "high", "normal"]
    serves: list[str]
    deadline: date | None
    internal_note: str | None = None
    contact: Contact | None = None


class NeedRevised(_Event):
    need_id: str
    changes: dict[str, Any] = Field(description="field -> revised value")
    previous: dict[str, Any] = Field(description="field -> value before the revision")
    reason: str


class NeedClosed(_Event):
    need_id: str
    reason: str


class NeedCancelled(_Event):
    need_id: str
    reason: str


class Line(_Event):
    line_id: str
    kind: LineKind
    need_id: str | None = Field(description="the need this line answers, if any")
    item: str = Field(description="what is given; for money, what it pays for")
    category: str
    quantity: Quantity | None = Field(description="in kind")
    unit: UnitName | None
    weight_kg: Quantity | None = Field(description="estimated weight of the whole line")
    value_amount: Amount | None = Field(description="estimated value of an in-kind line")
    value_currency: Currency | None
    amount: Amount | None = Field(description="money")
    currency: Currency | None


class PledgeMade(_Event):
    pledge_id: str
    donor_id: str
    recipient_id: str
    partnership_id: str | None
    description: str | None
    lines: list[Line] = Field(min_length=1)
    internal_note: str | None = None
    contact: Contact | None = None


class PledgeCommitted(_Event):
    pledge_id: str
    donor_id: str
    recipient_id: str


class PledgeLineAmended(_Event):
    pledge_id: str
    line_id: str
    kind: LineKind
    previous_quantity: Quantity | None
    quantity: Quantity | None
    unit: UnitName | None
    previous_amount: Amount | None
    amount: Amount | None
    currency: Currency | None
    weight_kg: Quantity | None = Field(description="the line's estimated weight, rescaled")
    reason: str
    pledge_status: PledgeStatus


class PledgeWithdrawn(_Event):
    pledge_id: str
    reason: str
    previous_status: PledgeStatus


class MoneyReceived(_Event):
    pledge_id: str
    line_id: str
    amount: Amount
    currency: Currency
    received_on: date
    reference: str
    received_total: Amount
    outstanding: Amount
    pledge_status: PledgeStatus


class DonorFigureReported(_Event):
    """The donor's own figure for a line (delivered or paid so far); counted for nothing, kept
    beside the recipient's confirmed figure."""

    pledge_id: str
    line_id: str
    kind: LineKind
    quantity: Quantity | None
    unit: UnitName | None
    amount: Amount | None
    currency: Currency | None
    reported_on: date
    note: str | None


class ConfirmedBy(_Event):
    name: str
    role: str | None = None


class Document(_Event):
    name: str
    sha256: str


class DeliveryRecorded(_Event):
    """One manifest line of a confirmed delivery (shipments.delivery-confirmed), in the pledge
    line's unit. Only `received` (good condition) counts towards fulfilment."""

    pledge_id: str
    line_id: str
    convoy_id: str
    manifest_line_id: str
    delivery_event_id: str
    recipient_id: str | None
    unit: UnitName
    loaded: Quantity
    received: Quantity
    damaged: Quantity
    short: Quantity
    lost: Quantity
    confirmed_by: ConfirmedBy | None
    document: Document | None
    delivered_total: Quantity
    pledge_status: PledgeStatus


class PledgeLineUpdated(_Event):
    """What may still be loaded from a committed in-kind line (docs/cross-service-events.md)."""

    pledge_id: str
    line_id: str
    donor_id: str
    recipient_id: str
    partnership_id: str | None
    item: str
    category: str
    unit: UnitName
    quantity: Quantity = Field(description="the line's current committed quantity")
    weight_kg: Quantity | None
    delivered: Quantity = Field(description="confirmed delivered in good condition")
    remaining: Quantity = Field(description="quantity - delivered, never below zero")
    status: Literal["committed", "withdrawn", "fulfilled"]


SCHEMAS: dict[str, type[_Event]] = {
    NEED_POSTED: NeedPosted,
    NEED_REVISED: NeedRevised,
    NEED_CLOSED: NeedClosed,
    NEED_CANCELLED: NeedCancelled,
    PLEDGE_MADE: PledgeMade,
    PLEDGE_COMMITTED: PledgeCommitted,
    PLEDGE_LINE_AMENDED: PledgeLineAmended,
    PLEDGE_WITHDRAWN: PledgeWithdrawn,
    MONEY_RECEIVED: MoneyReceived,
    DONOR_FIGURE_REPORTED: DonorFigureReported,
    DELIVERY_RECORDED: DeliveryRecorded,
    PLEDGE_LINE_UPDATED: PledgeLineUpdated,
}


def payload(event: _Event) -> dict[str, Any]:
    """The JSON data of an event, validated by its model."""
    return event.model_dump(mode="json")
