"""What callers ask the pledges service to do: one frozen dataclass per intent, built by the
routes (api/) and the subscriptions after validation and authorization, run by its handler
(handlers.py).

`acting_for` is the organisation the caller writes for (None: an administrator, who may act
for anyone: auth.py); `if_match` the version the caller read (If-Match), None for any;
`occurred_at` None means now. A request the domain decides on travels as the domain's own
dataclass (domain.PostNeed, domain.MakePledge, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.pledges import domain
from shared.commands import Command


@dataclass(frozen=True, slots=True, kw_only=True)
class PostNeed(Command):
    need: domain.PostNeed
    acting_for: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Change(Command):
    """A change to a record: who changes it (acting_for), at which version (if_match)."""

    acting_for: str | None
    if_match: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NeedChange(Change):
    need_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviseNeed(NeedChange):
    revision: domain.ReviseNeed


@dataclass(frozen=True, slots=True, kw_only=True)
class EndNeed(NeedChange):
    """Close (done with) or cancel (no longer wanted) an active need."""

    to: domain.NeedState
    reason: str
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MakePledge(Command):
    pledge: domain.MakePledge
    acting_for: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PledgeChange(Change):
    pledge_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitPledge(PledgeChange):
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawPledge(PledgeChange):
    reason: str
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AmendLine(PledgeChange):
    line_id: str
    size: Decimal | int  # a quantity in kind, an amount in minor units for money
    reason: str
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiveMoney(PledgeChange):
    receipt: domain.ReceiveMoney


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportDonorFigure(PledgeChange):
    figure: domain.ReportFigure


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDelivery(Command):
    """One confirmed delivery (shipments.delivery-confirmed) counted towards the pledges it
    names: {pledge id: its lines}; `correlation_ids` are the ones its lines carry."""

    delivered: Mapping[str, Sequence[domain.DeliveredLine]]
    correlation_ids: Mapping[str, str | None]
    occurred_at: datetime
