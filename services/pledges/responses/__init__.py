"""What the pledges API answers: documentation, not re-validated on the way out (how these
models are used and how they write amounts, quantities and instants: shared/responses.py)."""

from __future__ import annotations

from pydantic import Field

from services.pledges.responses.reports import *  # noqa: F403
from shared.responses import Erased, Out, RecordedEventOut, SubjectId


class NeedTarget(Out):
    """Goods: quantity (a decimal string) and unit; money: amount (minor units), currency and
    the amount formatted in major units."""

    quantity: str | None = None
    unit: str | None = None
    amount: int | None = None
    currency: str | None = None
    formatted: str | None = None


class NeedCoverage(Out):
    """Decimal strings for goods, integer minor units for money."""

    pledged: str | int
    committed: str | int
    delivered: str | int
    gap: str | int


class NeedRevisionChanges(Out):
    serves: list[str] | None = None
    deadline: str | None = None
    quantity: str | None = None


class NeedRevision(Out):
    reason: str | None = None
    changes: NeedRevisionChanges | None = None
    previous: NeedRevisionChanges | None = None
    occurred_at: str | None = None


class NeedPageItemContact(Out):
    name: str | None = Field(default=None, description='"(erased)" once the person was erased')
    role: str | None = None
    email: str | None = None
    phone: str | None = None
    subject_id: SubjectId = None
    erased: Erased = None


class _NeedFields(Out):
    """What a need answers with, in the list and alone."""

    need_id: str
    recipient_id: str
    recipient_name: str | None
    kind: str
    category: str
    description: str
    target: NeedTarget
    priority: str
    serves: list[str]
    deadline: str | None
    revisions: list[NeedRevision] = Field(description="the latest 100 (the history has all)")
    revisions_total: int = Field(description="how many revisions the need has")
    end_reason: str | None
    posted_at: str
    version: int
    internal_note: str | None = None
    contact: NeedPageItemContact | None = None


class NeedPageItem(_NeedFields):
    status: str
    coverage: NeedCoverage
    correlation_id: str


class NeedPage(Out):
    items: list[NeedPageItem]
    next_cursor: str | None


class Need(_NeedFields):
    status: str | None = Field(
        description="open, partly_covered, covered, closed or cancelled; with `as_of`, closed"
        " or cancelled if the need had ended by then, else null (coverage is in the reports)"
    )
    coverage: NeedCoverage | None = Field(description="now; null with `as_of`")
    correlation_id: str | None
    state: str | None = Field(
        default=None, description="with `as_of`: active, closed or cancelled, as stated then"
    )
    as_of: str | None = None


class NeedHistory(Out):
    need_id: str
    events: list[RecordedEventOut] | None = None
    next_after: int | None


class PledgePageItemLine(Out):
    line_id: str
    kind: str | None = None
    need_id: str | None
    item: str | None = None
    category: str | None = None
    quantity: str | None = None
    unit: str | None = None
    delivered: str | None = None
    remaining: str | None = None


class PledgePageItem(Out):
    pledge_id: str
    donor_id: str
    donor_name: str | None = None
    recipient_id: str
    recipient_name: str | None = None
    partnership_id: str | None
    description: str | None = None
    status: str
    made_at: str | None = None
    version: int
    lines: list[PledgePageItemLine] | None = None


class PledgePage(Out):
    items: list[PledgePageItem] | None = None
    next_cursor: str | None = None


class PledgeLineAmendment(Out):
    previous: str | None = None
    new: str | None = None
    reason: str | None = None


class PledgeLineDelivery(Out):
    convoy_id: str
    manifest_line_id: str
    loaded: str
    received: str
    damaged: str
    short: str
    lost: str


class PledgeLineDonorReported(Out):
    figure: str | int | None = None
    reported_on: str | None = None
    difference: str | int | None = None


class PledgeLineReceipt(Out):
    amount: int | None = None
    received_on: str | None = None
    reference: str | None = None


class PledgeLineValue(Out):
    amount: int
    currency: str


class PledgeLine(Out):
    line_id: str
    kind: str
    need_id: str | None
    item: str
    category: str
    amendments: list[PledgeLineAmendment] = Field(description="the latest 100")
    amendments_total: int = Field(description="how many amendments the line has")
    quantity: str | None = None
    unit: str | None = None
    weight_kg: str | None = None
    estimated_value: PledgeLineValue | None = None
    recipient_confirmed: str | int
    damaged: str | None = None
    short: str | None = None
    lost: str | None = None
    remaining: str | None = None
    deliveries: list[PledgeLineDelivery] | None = Field(
        default=None, description="the latest 100 (the history has all)"
    )
    deliveries_total: int | None = Field(default=None, description="how many deliveries")
    donor_reported: PledgeLineDonorReported | None
    amount: int | None = None
    currency: str | None = None
    formatted: str | None = None
    outstanding: int | None = None
    receipts: list[PledgeLineReceipt] | None = Field(
        default=None, description="the latest 100 (the history has all)"
    )
    receipts_total: int | None = Field(default=None, description="how many receipts")


class Pledge(Out):
    pledge_id: str
    donor_id: str
    donor_name: str | None
    recipient_id: str
    recipient_name: str | None
    partnership_id: str | None
    description: str | None
    status: str
    made_at: str
    committed_at: str | None
    withdrawn_at: str | None
    withdrawal_reason: str | None
    lines: list[PledgeLine]
    version: int
    correlation_id: str | None
    internal_note: str | None = None
    contact: NeedPageItemContact | None = None
    as_of: str | None = None


class PledgeHistory(Out):
    pledge_id: str
    events: list[RecordedEventOut] | None = None
    next_after: int | None


class NeedChanged(Out):
    need_id: str
    status: str
    version: int
    correlation_id: str


class NeedEnded(Out):
    need_id: str
    version: int
    correlation_id: str


class PledgeChanged(Out):
    pledge_id: str
    status: str
    version: int
    correlation_id: str


class Reference(Out):
    """The closed lists the API accepts."""

    units: list[str]
    currencies: dict[str, int] = Field(description="ISO 4217 code: its minor-unit digits")
    categories: list[str]
    serves: list[str]
    priorities: list[str]
