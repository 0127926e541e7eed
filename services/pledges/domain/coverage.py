"""How far pledges and deliveries cover a need: computed, never typed in.

pledged   every line answering the need that is not withdrawn (a withdrawn line keeps only what
          had already arrived), in the need's unit or currency
committed the part of it whose pledge is binding (committed, partly fulfilled, fulfilled)
delivered goods received in good condition, or money received
gap       target - pledged, never below zero, while the need is active: what nobody has
          promised yet; 0 once it is closed or cancelled (it asks for nothing more), in every
          view (the need, the lists, the needs report, the totals, IATI)
status    open (nothing pledged), partly_covered, covered; or the need's own closed/cancelled

Each line's part (`share`) depends on that line and its pledge's status alone, so the read model
keeps every line's share and adds the difference to its need's sums when a line changes
(`summarise` turns the sums into the gap and status): a pledge costs the same however many
answer the need. `coverage` is the same sums taken over every line at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from services.pledges.domain import quantities
from services.pledges.domain.quantities import ZERO

__all__ = ["BINDING", "Contribution", "Coverage", "Share", "coverage", "share", "summarise"]

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


@dataclass(frozen=True, slots=True)
class Share:
    """One line's part of its need's figures, in the need's unit or currency."""

    pledged: Decimal = ZERO
    committed: Decimal = ZERO
    delivered: Decimal = ZERO

    def __add__(self, other: Share) -> Share:
        return Share(
            self.pledged + other.pledged,
            self.committed + other.committed,
            self.delivered + other.delivered,
        )

    def __sub__(self, other: Share) -> Share:
        return Share(
            self.pledged - other.pledged,
            self.committed - other.committed,
            self.delivered - other.delivered,
        )

    def __bool__(self) -> bool:
        return bool(self.pledged or self.committed or self.delivered)


def share(c: Contribution, *, unit: str | None) -> Share:
    """What line `c` adds to a need whose unit is `unit` (None for a money need): its size
    while its pledge stands (committed too once binding), what arrived once withdrawn."""
    size, arrived = c.size, c.delivered
    if unit is not None and c.unit is not None:
        size = quantities.convert(size, c.unit, unit)
        arrived = quantities.convert(arrived, c.unit, unit)
    if c.pledge_status == "withdrawn":
        return Share(pledged=arrived, committed=arrived, delivered=arrived)
    return Share(
        pledged=size, committed=size if c.pledge_status in BINDING else ZERO, delivered=arrived
    )


def summarise(*, target: Decimal, need_state: str, sums: Share) -> Coverage:
    """A need's figures from its target, state (active, closed, cancelled) and the sums of
    its lines' shares: an ended need has no gap (see the module's docstring)."""
    pledged = sums.pledged
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
        committed=sums.committed,
        delivered=sums.delivered,
        gap=max(ZERO, target - pledged) if need_state == "active" else ZERO,
        status=status,
    )


def coverage(
    *,
    target: Decimal,
    unit: str | None,
    need_state: str,
    contributions: Iterable[Contribution],
) -> Coverage:
    """`unit` is the need's unit (None for a money need); `need_state` active, closed or
    cancelled."""
    sums = Share()
    for c in contributions:
        sums += share(c, unit=unit)
    return summarise(target=target, need_state=need_state, sums=sums)
