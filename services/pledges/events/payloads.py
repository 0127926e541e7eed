"""The current model of each event type pledges records (events/__init__.py has their
schemas, older versions and the codec)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from shared.event_models import MAX_ID as MAX_ID
from shared.event_models import MAX_LABEL as MAX_LABEL
from shared.event_models import MAX_NAME as MAX_NAME
from shared.event_models import EventModel as EventModel
from shared.event_models import Id as Id
from shared.event_models import Label as Label
from shared.event_models import Name as Name
from shared.event_models import SealedPerson, by_type, sealed_field

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


# Bounds a consumer enforces through the published schemas; never below what the API accepts
# (services/pledges/requests.py: slugs 100, item 200, description 2000, notes 4000, reasons
# 1000, receipt reference 200, at most MAX_LINES lines and 11 groups served); ids, names and
# labels are bounded alike in every service (shared/event_models.py).
MAX_TEXT = 2000
MAX_NOTE = 4000
MAX_REASON = 1000
MAX_LINES = 100
MAX_SERVES = 11

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Note = Annotated[str, Field(max_length=MAX_NOTE)]
Reason = Annotated[str, Field(max_length=MAX_REASON)]


class Contact(EventModel):
    # a contact in clear: what version 1 of need-posted and pledge-made held (older logs)
    name: str = Field(min_length=1, max_length=200)
    role: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=50)


# base64 of nonce, tag and the fields' JSON: a contact's 504 characters may take 6 bytes each
# in JSON (control characters escaped), about 4,100 characters of base64
MAX_SEALED = 8192


class _Sealed(SealedPerson):
    """A person as the log holds them (shared/event_models.py), with room for a contact."""

    sealed: str = sealed_field(MAX_SEALED)


class SealedContact(_Sealed):
    """A need's or a pledge's contact: name, email and phone sealed, recorded by the need's
    recipient or the pledge's donor; the role in clear."""

    personal: list[Literal["name", "email", "phone"]] = Field(min_length=1, max_length=3)
    role: str | None = Field(default=None, max_length=100)


class _NeedPosted(EventModel):
    need_id: Id
    recipient_id: Id
    kind: Literal["item", "money"]
    category: Label
    description: Text
    quantity: Quantity | None = Field(description="item needs: the quantity sought")
    unit: UnitName | None
    amount: Amount | None = Field(description="money needs: the target")
    currency: Currency | None
    priority: Literal["critical", "high", "normal"]
    serves: list[Label] = Field(max_length=MAX_SERVES)
    deadline: date | None
    internal_note: Note | None = None


class NeedPosted(_NeedPosted):
    """A need, its contact sealed (version 1: in clear)."""

    EVENT_TYPE: ClassVar[str] = NEED_POSTED
    SCHEMA_VERSION: ClassVar[int] = 2

    contact: SealedContact | None = None


class NeedRevised(EventModel):
    EVENT_TYPE: ClassVar[str] = NEED_REVISED
    need_id: Id
    changes: dict[str, Any] = Field(description="field -> revised value")
    previous: dict[str, Any] = Field(description="field -> value before the revision")
    reason: Reason


class _NeedEnded(EventModel):
    need_id: Id
    reason: Reason


class NeedClosed(_NeedEnded):
    EVENT_TYPE: ClassVar[str] = NEED_CLOSED


class NeedCancelled(_NeedEnded):
    EVENT_TYPE: ClassVar[str] = NEED_CANCELLED


class Line(EventModel):
    line_id: Id
    kind: LineKind
    need_id: Id | None = Field(description="the need this line answers, if any")
    item: Name = Field(description="what is given; for money, what it pays for")
    category: Label
    quantity: Quantity | None = Field(description="in kind")
    unit: UnitName | None
    weight_kg: Quantity | None = Field(description="estimated weight of the whole line")
    value_amount: Amount | None = Field(description="estimated value of an in-kind line")
    value_currency: Currency | None
    amount: Amount | None = Field(description="money")
    currency: Currency | None


class _PledgeMade(EventModel):
    pledge_id: Id
    donor_id: Id
    recipient_id: Id
    partnership_id: Id | None
    description: Text | None
    lines: list[Line] = Field(min_length=1, max_length=MAX_LINES)
    internal_note: Note | None = None


class PledgeMade(_PledgeMade):
    """A pledge, its contact sealed (version 1: in clear)."""

    EVENT_TYPE: ClassVar[str] = PLEDGE_MADE
    SCHEMA_VERSION: ClassVar[int] = 2

    contact: SealedContact | None = None


class PledgeCommitted(EventModel):
    EVENT_TYPE: ClassVar[str] = PLEDGE_COMMITTED
    pledge_id: Id
    donor_id: Id
    recipient_id: Id


class _OnLine(EventModel):
    """What every event of a pledge's line names first: the pledge and the line."""

    pledge_id: Id
    line_id: Id


class _PledgeLineAmended(_OnLine):
    kind: LineKind
    previous_quantity: Quantity | None
    quantity: Quantity | None
    unit: UnitName | None
    previous_amount: Amount | None
    amount: Amount | None
    currency: Currency | None
    weight_kg: Quantity | None = Field(description="the line's estimated weight, rescaled")
    reason: Reason


class PledgeLineAmended(_PledgeLineAmended):
    """A line's new quantity or amount; the pledge's status is the read models' to work out
    (version 1 carried it)."""

    EVENT_TYPE: ClassVar[str] = PLEDGE_LINE_AMENDED
    SCHEMA_VERSION: ClassVar[int] = 2


class PledgeWithdrawn(EventModel):
    EVENT_TYPE: ClassVar[str] = PLEDGE_WITHDRAWN
    pledge_id: Id
    reason: Reason
    previous_status: PledgeStatus


class _MoneyReceived(_OnLine):
    amount: Amount
    currency: Currency
    received_on: date
    reference: Name


class MoneyReceived(_MoneyReceived):
    """Money the recipient confirmed received on a money line; the line's total, what remains
    outstanding and the pledge's status are the read models' to work out (version 1 carried
    them)."""

    EVENT_TYPE: ClassVar[str] = MONEY_RECEIVED
    SCHEMA_VERSION: ClassVar[int] = 2


class DonorFigureReported(_OnLine):
    """The donor's own figure for a line (delivered or paid so far); counted for nothing, kept
    beside the recipient's confirmed figure."""

    EVENT_TYPE: ClassVar[str] = DONOR_FIGURE_REPORTED
    kind: LineKind
    quantity: Quantity | None
    unit: UnitName | None
    amount: Amount | None
    currency: Currency | None
    reported_on: date
    note: Note | None


class ConfirmedBy(EventModel):
    # who signed for the goods in clear: version 1 of delivery-recorded (older logs)
    name: Name
    role: Label | None = None


class SealedConfirmedBy(_Sealed):
    """Who signed for the goods as shipments sealed them (a shipments subject: erasure there
    reaches this copy), or as pledges sealed a name that came in clear from an older shipments
    event; the role in clear."""

    personal: list[Literal["name"]] = Field(max_length=1)
    role: Label | None = None


class Document(EventModel):
    name: Name
    sha256: str = Field(max_length=64)


class _DeliveryRecorded(_OnLine):
    """One manifest line of a confirmed delivery (shipments.delivery-confirmed), in the pledge
    line's unit. Only `received` (good condition) counts towards fulfilment."""

    convoy_id: Id
    manifest_line_id: Id
    delivery_event_id: Id
    recipient_id: Id | None
    unit: UnitName
    loaded: Quantity
    received: Quantity
    damaged: Quantity
    short: Quantity
    lost: Quantity
    confirmed_by: object  # who signed for the goods: each version says how (kept in place)
    document: Document | None


class DeliveryRecorded(_DeliveryRecorded):
    """One manifest line of a confirmed delivery (shipments.delivery-confirmed), in the pledge
    line's unit. Only `received` (good condition) counts towards fulfilment: the line's total
    and the pledge's status are the read models' to work out (version 2 carried them)."""

    EVENT_TYPE: ClassVar[str] = DELIVERY_RECORDED
    SCHEMA_VERSION: ClassVar[int] = 3  # 2: with delivered_total and pledge_status; 1: in clear

    confirmed_by: SealedConfirmedBy | None


class PledgeLineUpdated(_OnLine):
    """What may still be loaded from a committed in-kind line (docs/cross-service-events.md)."""

    EVENT_TYPE: ClassVar[str] = PLEDGE_LINE_UPDATED
    donor_id: Id
    recipient_id: Id
    partnership_id: Id | None
    item: Name
    category: Label
    unit: UnitName
    quantity: Quantity = Field(description="the line's current committed quantity")
    weight_kg: Quantity | None
    delivered: Quantity = Field(description="confirmed delivered in good condition")
    remaining: Quantity = Field(description="quantity - delivered, never below zero")
    status: Literal["committed", "withdrawn", "fulfilled"]


# The current model of each type, by type (older versions: older.py)
SCHEMAS: dict[str, type[EventModel]] = by_type(
    NeedPosted,
    NeedRevised,
    NeedClosed,
    NeedCancelled,
    PledgeMade,
    PledgeCommitted,
    PledgeLineAmended,
    PledgeWithdrawn,
    MoneyReceived,
    DonorFigureReported,
    DeliveryRecorded,
    PledgeLineUpdated,
)
