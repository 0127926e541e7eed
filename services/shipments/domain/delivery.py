"""Proof of delivery by the recipient, and closing a convoy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.shipments import events as ev
from services.shipments.domain import errors
from services.shipments.domain.model import Convoy, ConvoyStatus
from services.shipments.domain.planning import (
    after_plan,
    not_before,
    not_in_future,
    require_existing,
)
from services.shipments.domain.values import text
from shared.events import NewEvent

__all__ = ["CloseConvoy", "ConfirmDelivery", "DeliveredQuantities", "close", "confirm_delivery"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class DeliveredQuantities:
    manifest_line_id: str
    received: Decimal
    damaged: Decimal
    short: Decimal


@dataclass(frozen=True, slots=True)
class ConfirmDelivery:
    """`confirmed_by`: the receiver as the recipient records them, sealed (name) with their
    role in clear (services/shipments/privacy.py)."""

    confirmed_by: Mapping[str, Any]
    lines: tuple[DeliveredQuantities, ...]
    occurred_at: datetime
    document_name: str | None = None
    document_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class CloseConvoy:
    occurred_at: datetime
    note: str | None = None


def _covers_the_manifest(state: Convoy, command: ConfirmDelivery) -> None:
    sent = [x.manifest_line_id for x in command.lines]
    on_board = [x.manifest_line_id for x in state.loaded]
    twice = sorted({i for i in sent if sent.count(i) > 1})
    unknown = sorted(set(sent) - set(on_board))
    missing = [i for i in on_board if i not in sent]
    if twice or unknown or missing:
        parts = []
        if unknown:
            parts.append(f"not on the manifest: {', '.join(unknown)}")
        if twice:
            parts.append(f"given twice: {', '.join(twice)}")
        if missing:
            parts.append(f"missing: {', '.join(missing)}")
        raise errors.invalid(
            "the delivery must give every manifest line once (" + "; ".join(parts) + ")",
            name="lines",
            reason="does not match the manifest",
        )


def confirm_delivery(state: Convoy, command: ConfirmDelivery, *, now: datetime) -> list[NewEvent]:
    """Per line, received + damaged + short must equal loaded - lost. Raises NotFound,
    WrongStatus (not arrived, or confirmed already), ValidationFailed (lines that do not match
    the manifest, future time), DeliveryArithmetic (with every line's sums)."""
    require_existing(state)
    arrived_at = state.arrived_at
    if state.status is not ConvoyStatus.ARRIVED or arrived_at is None:
        hint = "it was confirmed already" if state.delivery else "record its arrival first"
        raise errors.status_forbids(state, hint)
    not_in_future(command.occurred_at, now)
    if command.occurred_at < arrived_at:
        raise errors.invalid(
            f"the delivery at {command.occurred_at.isoformat()} is before the arrival at"
            f" {arrived_at.isoformat()}",
            name="occurred_at",
            reason="before arrival",
        )
    _covers_the_manifest(state, command)
    lost = state.lost()
    given = {x.manifest_line_id: x for x in command.lines}
    lines, wrong, sums = [], [], []
    for line in state.loaded:
        q = given[line.manifest_line_id]
        lost_here = lost.get(line.manifest_line_id, ZERO)
        expected = line.quantity - lost_here
        total = q.received + q.damaged + q.short
        sums.append(
            {
                "manifest_line_id": line.manifest_line_id,
                "item": line.item,
                "unit": line.unit,
                "loaded": text(line.quantity),
                "lost": text(lost_here),
                "expected": text(expected),
                "received": text(q.received),
                "damaged": text(q.damaged),
                "short": text(q.short),
                "total": text(total),
            }
        )
        if total != expected:
            wrong.append(
                f"line {line.manifest_line_id} ({line.item}, {line.unit}): received"
                f" {text(q.received)} + damaged {text(q.damaged)} + short {text(q.short)} ="
                f" {text(total)}, but loaded {text(line.quantity)} - lost {text(lost_here)} ="
                f" {text(expected)}"
            )
        lines.append(
            ev.DeliveredLine(
                manifest_line_id=line.manifest_line_id,
                pledge_id=line.pledge_id,
                line_id=line.line_id,
                item=line.item,
                unit=line.unit,
                loaded=text(line.quantity),
                received=text(q.received),
                damaged=text(q.damaged),
                short=text(q.short),
                lost=text(lost_here),
                correlation_id=line.correlation_id,
            )
        )
    if wrong:
        raise errors.DeliveryArithmetic(
            "received + damaged + short must equal loaded - lost on every line; "
            + "; ".join(wrong),
            extra={"lines": sums},
        )
    document = (
        ev.Document(name=command.document_name, sha256=command.document_sha256)
        if command.document_name and command.document_sha256
        else None
    )
    data = ev.DeliveryConfirmed(
        convoy_id=state.convoy_id,
        recipient_id=state.destination_id,
        origin_id=state.origin_id,
        carrier_id=state.carrier_id,
        confirmed_by=ev.ConfirmedBy.model_validate(command.confirmed_by),
        document=document,
        lines=lines,
    )
    return [ev.CODEC.new(data, occurred_at=command.occurred_at)]


def _last_facts(state: Convoy) -> list[tuple[datetime | None, str]]:
    """What a closing follows: the plan and manifest, the road (its latest entry, whatever its
    kind) and the delivery."""
    facts = [
        after_plan(state),
        (state.manifest_changed_at, "the last load or unload"),
        (state.dispatched_at, "the dispatch"),
        (state.arrived_at, "the arrival"),
    ]
    if (road := state.last_news) is not None:
        facts.append((road.occurred_at, f"road entry {road.entry_id} ({road.kind})"))
    if state.delivery is not None:
        facts.append((state.delivery.occurred_at, "the delivery"))
    return facts


def close(state: Convoy, command: CloseConvoy, *, now: datetime) -> list[NewEvent]:
    """Once delivered, or once everything on board was lost (arrived or not), dated no earlier
    than anything recorded of the convoy (the delivery, the arrival, the road's latest entry).
    Raises NotFound, WrongStatus, ValidationFailed (a time in the future or before those)."""
    require_existing(state)
    status = state.status
    lost = status in (ConvoyStatus.LOST, ConvoyStatus.ARRIVED) and state.all_lost
    if status is not ConvoyStatus.DELIVERED and not lost:
        raise errors.status_forbids(
            state,
            "a convoy is closed after its delivery is confirmed, or when everything on board was"
            " lost",
        )
    not_in_future(command.occurred_at, now)
    not_before(command.occurred_at, *_last_facts(state), now=now)
    data = ev.ConvoyClosed(
        convoy_id=state.convoy_id,
        outcome="delivered" if status is ConvoyStatus.DELIVERED else "lost",
        note=command.note,
    )
    return [ev.CODEC.new(data, occurred_at=command.occurred_at)]
