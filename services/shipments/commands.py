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
from shared.auth import Principal
from shared.commands import Command

__all__ = [
    "CancelConvoy",
    "CloseConvoy",
    "ConfirmDelivery",
    "LoadLine",
    "PlanConvoy",
    "RecordEntries",
    "UnloadLine",
]


@dataclass(frozen=True, slots=True)
class PlanConvoy(Command):
    plan: domain.PlanConvoy
    caller: Principal


@dataclass(frozen=True, slots=True)
class LoadLine(Command):
    convoy_id: str
    load: domain.LoadLine
    caller: Principal
    if_match: int | None = None


@dataclass(frozen=True, slots=True)
class UnloadLine(Command):
    convoy_id: str
    unload: domain.UnloadLine
    caller: Principal
    if_match: int | None = None


@dataclass(frozen=True, slots=True)
class CancelConvoy(Command):
    convoy_id: str
    cancel: domain.CancelConvoy
    caller: Principal
    if_match: int | None = None


@dataclass(frozen=True, slots=True)
class RecordEntries(Command):
    """A batch of field entries from the road, all or nothing (no If-Match: entries are
    recorded late and in any order)."""

    convoy_id: str
    entries: tuple[domain.FieldEntry, ...]
    caller: Principal


@dataclass(frozen=True, slots=True)
class ConfirmDelivery(Command):
    convoy_id: str
    delivery: domain.ConfirmDelivery
    caller: Principal
    if_match: int | None = None


@dataclass(frozen=True, slots=True)
class CloseConvoy(Command):
    convoy_id: str
    close: domain.CloseConvoy
    caller: Principal
    if_match: int | None = None
