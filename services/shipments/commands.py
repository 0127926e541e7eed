"""What a caller asks of the shipments service, one command per intent (issue 18): a route
builds one from the request it validated (the domain's own request inside, the caller and the
version it read) and `write` runs the handler registered for it (handlers/).

Who may act on a convoy depends on the convoy (its origin, recipient, carrier and donors), so
the caller travels in the command and its handler applies auth.py's rules to the convoy it
loads. `if_match`: the convoy version the caller read (If-Match), or None.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.shipments import domain
from shared.commands import Command
from shared.principals import Principal

__all__ = [
    "CancelConvoy",
    "CloseConvoy",
    "ConfirmDelivery",
    "LoadLine",
    "OnConvoy",
    "PlanConvoy",
    "RecordEntries",
    "UnloadLine",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanConvoy(Command):
    plan: domain.PlanConvoy
    caller: Principal


@dataclass(frozen=True, slots=True, kw_only=True)
class OnConvoy(Command):
    """A command on an existing convoy (registered handlers take its subclasses)."""

    convoy_id: str
    caller: Principal
    if_match: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadLine(OnConvoy):
    load: domain.LoadLine


@dataclass(frozen=True, slots=True, kw_only=True)
class UnloadLine(OnConvoy):
    unload: domain.UnloadLine


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelConvoy(OnConvoy):
    cancel: domain.CancelConvoy


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordEntries(OnConvoy):
    """A batch of field entries from the road, all or nothing (entries are recorded late and
    in any order: If-Match is never asked)."""

    entries: tuple[domain.FieldEntry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmDelivery(OnConvoy):
    delivery: domain.ConfirmDelivery


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseConvoy(OnConvoy):
    close: domain.CloseConvoy
