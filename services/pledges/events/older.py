"""Older schema versions of pledges' event types, still in logs, and what readers get of them.

Version 1 of need-posted, pledge-made and delivery-recorded named a person in clear; version 2
sealed it (shared/privacy.py). Sealing needs the database (privacy.seal_v1 migrates such
events in place), so no upcaster can turn one into version 2: readers get the READ models
instead, the person sealed or in clear, every other field as the current version has it.
Version 2 of delivery-recorded, version 1 of pledge-line-amended and money-received also
carried values derived from the pledge's other events (a line's totals, the pledge's status),
which the projections now work out: upcasting drops them.
"""

from __future__ import annotations

from typing import ClassVar

from services.pledges.events.payloads import (
    DELIVERY_RECORDED,
    MONEY_RECEIVED,
    NEED_POSTED,
    PLEDGE_LINE_AMENDED,
    PLEDGE_MADE,
    Amount,
    ConfirmedBy,
    Contact,
    PledgeStatus,
    Quantity,
    SealedConfirmedBy,
    SealedContact,
    _DeliveryRecorded,
    _MoneyReceived,
    _NeedPosted,
    _PledgeLineAmended,
    _PledgeMade,
)
from shared.codec import Upcaster
from shared.event_models import EventModel, unchanged, without


class NeedPostedV1(_NeedPosted):
    contact: Contact | None = None


class PledgeMadeV1(_PledgeMade):
    contact: Contact | None = None


class DeliveryRecordedV1(_DeliveryRecorded):
    __doc__ = _DeliveryRecorded.__doc__

    confirmed_by: ConfirmedBy | None
    delivered_total: Quantity
    pledge_status: PledgeStatus


class DeliveryRecordedV2(_DeliveryRecorded):
    __doc__ = _DeliveryRecorded.__doc__

    confirmed_by: SealedConfirmedBy | None
    delivered_total: Quantity
    pledge_status: PledgeStatus


class PledgeLineAmendedV1(_PledgeLineAmended):
    pledge_status: PledgeStatus


class MoneyReceivedV1(_MoneyReceived):
    received_total: Amount
    outstanding: Amount
    pledge_status: PledgeStatus


# {(type, version): model}
PREVIOUS: dict[tuple[str, int], type[EventModel]] = {
    (NEED_POSTED, 1): NeedPostedV1,
    (PLEDGE_MADE, 1): PledgeMadeV1,
    (DELIVERY_RECORDED, 1): DeliveryRecordedV1,
    (DELIVERY_RECORDED, 2): DeliveryRecordedV2,
    (PLEDGE_LINE_AMENDED, 1): PledgeLineAmendedV1,
    (MONEY_RECEIVED, 1): MoneyReceivedV1,
}


class NeedPostedRead(_NeedPosted):
    EVENT_TYPE: ClassVar[str] = NEED_POSTED
    SCHEMA_VERSION: ClassVar[int] = 2

    contact: SealedContact | Contact | None = None


class PledgeMadeRead(_PledgeMade):
    EVENT_TYPE: ClassVar[str] = PLEDGE_MADE
    SCHEMA_VERSION: ClassVar[int] = 2

    contact: SealedContact | Contact | None = None


class DeliveryRecordedRead(_DeliveryRecorded):
    EVENT_TYPE: ClassVar[str] = DELIVERY_RECORDED
    SCHEMA_VERSION: ClassVar[int] = 3

    confirmed_by: SealedConfirmedBy | ConfirmedBy | None


READ: dict[str, type[EventModel]] = {
    NEED_POSTED: NeedPostedRead,
    PLEDGE_MADE: PledgeMadeRead,
    DELIVERY_RECORDED: DeliveryRecordedRead,
}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    (NEED_POSTED, 1): unchanged,
    (PLEDGE_MADE, 1): unchanged,
    (DELIVERY_RECORDED, 1): unchanged,
    (DELIVERY_RECORDED, 2): without("delivered_total", "pledge_status"),
    (PLEDGE_LINE_AMENDED, 1): without("pledge_status"),
    (MONEY_RECEIVED, 1): without("received_total", "outstanding", "pledge_status"),
}
