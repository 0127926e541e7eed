"""How far pledges and deliveries cover a need: computed, never typed in.

pledged   every line answering the need that is not withdrawn (a withdrawn line keeps only what
          had already arrived), in the need's unit or currency
committed the part of it whose pledge is binding (committed, partly fulfilled, fulfilled)
delivered goods received in good condition, or money received
gap       target - pledged, never below zero: what nobody has promised yet
status    open (nothing pledged), partly_covered, covered; or the need's own closed/cancelled
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from services.pledges.domain import quantities
from services.pledges.domain.quantities import ZERO

__all__ = ["BINDING", "Contribution", "Coverage", "coverage"]

BINDING = frozenset({"committed", "partly_fulfilled", "fulfilled"})


@dataclass(frozen=True, slots=True)
class Contribution:
    """One pledge line answering the need: its size and what arrived, in its own unit."""

    pledge_status: str
    size: Decimal
    delivered: Decimal
    unit: str | None = None  # None for money (the currency was checked when pledged)


@dataclass(frozen=True, slots=True)
class Coverage:
    target: Decimal
    pledged: Decimal
    committed: Decimal
    delivered: Decimal
    gap: Decimal
    status: str


def coverage(
    *,
    target: Decimal,
    unit: str | None,
    need_state: str,
    contributions: Iterable[Contribution],
) -> Coverage:
    """`unit` is the need's unit (None for a money need); `need_state` active, closed or
    cancelled."""
    pledged = committed = delivered = ZERO
    for c in contributions:
        size, arrived = c.size, c.delivered
        if unit is not None and c.unit is not None:
            size = quantities.convert(size, c.unit, unit)
            arrived = quantities.convert(arrived, c.unit, unit)
        delivered += arrived
        if c.pledge_status == "withdrawn":
            pledged += arrived
            committed += arrived
            continue
        pledged += size
        if c.pledge_status in BINDING:
            committed += size
    if need_state != "active":
        status = need_state
    elif pledged == 0:
        status = "open"
    elif pledged < target:
        status = "partly_covered"
    else:
        status = "covered"
    return Coverage(
        target=target,
        pledged=pledged,
        committed=committed,
        delivered=delivered,
        gap=max(ZERO, target - pledged),
        status=status,
    )
