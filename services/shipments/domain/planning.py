"""Planning and loading a convoy: plan, load, unload, cancel. Pure: time comes in as `now`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.shipments import events as ev
from services.shipments.domain import errors
from services.shipments.domain.model import Convoy, ConvoyStatus
from services.shipments.domain.values import PledgeLine, Vehicle, text
from shared.domain_checks import not_before_last_change, not_in_future, require_exists
from shared.errors import Conflict, NotFound
from shared.events import NewEvent

__all__ = [
    "MAX_MANIFEST_LINES",
    "CancelConvoy",
    "LoadLine",
    "PlanConvoy",
    "UnloadLine",
    "cancel",
    "line_weight",
    "load",
    "not_before",
    "not_in_future",
    "plan",
    "require_existing",
    "unload",
]

GRAMS = Decimal("0.001")
# The lines a convoy carries at once (loaded, not unloaded): its delivery gives every one of
# them, in one request and one event of at most this many lines, so a convoy never holds
# more than it can deliver. Unloaded lines do not count: they are off the convoy, given back.
MAX_MANIFEST_LINES = ev.MAX_LINES
BEFORE_DISPATCH = (ConvoyStatus.PLANNED, ConvoyStatus.LOADING)


@dataclass(frozen=True, slots=True)
class PlanConvoy:
    convoy_id: str
    reference: str
    origin_id: str
    destination_id: str
    carrier_id: str
    planned_departure: datetime
    vehicles: tuple[Vehicle, ...]
    occurred_at: datetime
    # sealed as the organisation planning records them (services/shipments/privacy.py); the
    # vehicle in clear
    drivers: tuple[Mapping[str, Any], ...] = ()
    route: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class LoadLine:
    manifest_line_id: str
    pledge_id: str
    line_id: str
    quantity: Decimal
    vehicle: str
    occurred_at: datetime
    weight_kg: Decimal | None = None


@dataclass(frozen=True, slots=True)
class UnloadLine:
    manifest_line_id: str
    occurred_at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CancelConvoy:
    reason: str
    occurred_at: datetime


def not_before(occurred_at: datetime, *facts: tuple[datetime | None, str], now: datetime) -> None:
    """An office write follows what it acts on: ValidationFailed naming `occurred_at` if it lies
    before the latest of `facts` (when, what; None: not happened), unless that was dated ahead
    of `now` and this is dated now or later (shared.domain_checks.not_before_last_change). Road
    entries, recorded late and in any order, are not held to this."""
    known = [(at, what) for at, what in facts if at is not None]
    if known:
        at, what = max(known, key=lambda fact: fact[0])
        not_before_last_change(occurred_at, at, previous=what, now=now)


def after_plan(state: Convoy) -> tuple[datetime | None, str]:
    """The convoy's plan, as a fact office writes follow (not_before)."""
    return state.planned_at, f"the plan of convoy {state.convoy_id}"


def require_existing(state: Convoy) -> Convoy:
    return require_exists(state, f"convoy {state.convoy_id}")


def _before_dispatch(state: Convoy, doing: str) -> None:
    if state.status not in BEFORE_DISPATCH:
        raise errors.status_forbids(state, f"{doing} only before dispatch")


def plan(state: Convoy, command: PlanConvoy, *, now: datetime) -> list[NewEvent]:
    """Raises Conflict (id taken), ValidationFailed (same origin and destination, a vehicle
    twice, a driver on an unknown vehicle, a future time)."""
    if state.exists:
        raise Conflict(f"convoy {command.convoy_id} already exists")
    if command.origin_id == command.destination_id:
        raise errors.invalid(
            "a convoy goes from one organisation to another",
            name="destination_id",
            reason="same as origin",
        )
    registrations = [v.registration for v in command.vehicles]
    twice = sorted({r for r in registrations if registrations.count(r) > 1})
    if twice:
        raise errors.invalid(
            f"vehicle {', '.join(twice)} is listed twice", name="vehicles", reason="duplicate"
        )
    for i, driver in enumerate(command.drivers):
        vehicle = driver.get("vehicle")
        if vehicle is not None and vehicle not in registrations:
            raise errors.invalid(
                f"driver {i + 1} is assigned to vehicle {vehicle}, which is not on this convoy"
                f" (vehicles: {', '.join(registrations)})",
                name=f"drivers.{i}.vehicle",
                reason="unknown vehicle",
            )
    not_in_future(command.occurred_at, now)
    data = ev.ConvoyPlanned(
        convoy_id=command.convoy_id,
        reference=command.reference,
        origin_id=command.origin_id,
        destination_id=command.destination_id,
        carrier_id=command.carrier_id,
        planned_departure=command.planned_departure,
        vehicles=[
            ev.Vehicle(registration=v.registration, type=v.type, capacity_kg=text(v.capacity_kg))
            for v in command.vehicles
        ],
        drivers=[ev.Driver.model_validate(d) for d in command.drivers],
        route=list(command.route),
        note=command.note,
    )
    return [ev.CODEC.new(data, occurred_at=command.occurred_at)]


def line_weight(pledge_line: PledgeLine, quantity: Decimal, given: Decimal | None) -> Decimal:
    """The weight of `quantity` of the line: as given, else prorated from the pledge's estimate,
    else from the unit. Raises ValidationFailed when nothing tells it."""
    if given is not None:
        return given
    if pledge_line.weight_kg is not None and pledge_line.quantity > 0:
        share = pledge_line.weight_kg * quantity / pledge_line.quantity
        return share.quantize(GRAMS, rounding=ROUND_HALF_UP)
    if pledge_line.unit == "kg":
        return quantity
    if pledge_line.unit == "tonnes":
        return quantity * 1000
    raise errors.invalid(
        f"the weight of {text(quantity)} {pledge_line.unit} of {pledge_line.item} is unknown:"
        " the pledge gives no estimate, so send weight_kg",
        name="weight_kg",
        reason="required for this line",
    )


def _check_loadable(state: Convoy, command: LoadLine, line: PledgeLine | None) -> PledgeLine:
    ref = f"{command.pledge_id}/{command.line_id}"
    if line is None:
        raise errors.invalid(
            f"pledge line {ref} is not known to shipments: only committed in-kind lines"
            " announced by pledges can be loaded (a fresh commitment takes a moment to arrive)",
            name="line_id",
            reason="unknown pledge line",
        )
    if line.status != "committed":
        raise errors.NotLoadable(
            f"pledge line {ref} is {line.status}: only committed lines can be loaded",
            extra={"pledge_line_status": line.status},
        )
    if line.recipient_id != state.destination_id:
        raise errors.invalid(
            f"pledge line {ref} is pledged to {line.recipient_id}, but this convoy goes to"
            f" {state.destination_id}",
            name="line_id",
            reason="another recipient",
        )
    if line.committed_at is not None and command.occurred_at < line.committed_at:
        raise errors.LoadBeforeCommitment(
            f"pledge line {ref} was committed at {line.committed_at.isoformat()}: goods are"
            f" loaded after their commitment, not at {command.occurred_at.isoformat()}",
            extra={
                "committed_at": line.committed_at.isoformat(),
                "occurred_at": command.occurred_at.isoformat(),
            },
        )
    return line


def _room_for_a_line(state: Convoy) -> None:
    """ManifestFull once the convoy carries MAX_MANIFEST_LINES lines (unloaded ones not
    counted): one more could never be delivered."""
    carried = len(state.loaded)
    if carried >= MAX_MANIFEST_LINES:
        raise errors.ManifestFull(
            f"convoy {state.convoy_id} carries {carried} manifest lines, the most a convoy may"
            f" carry ({MAX_MANIFEST_LINES}, what one delivery can give): load onto another"
            " convoy, or unload a line first",
            extra={"max_manifest_lines": MAX_MANIFEST_LINES, "manifest_lines": carried},
        )


def load(
    state: Convoy,
    command: LoadLine,
    *,
    now: datetime,
    pledge_line: PledgeLine | None,
    allocated: Decimal,
) -> list[NewEvent]:
    """`allocated` is what every convoy has loaded from the pledge line so far (the caller holds
    the line's lock). Raises NotFound, WrongStatus, Conflict (manifest line id taken),
    ManifestFull (MAX_MANIFEST_LINES carried already), ValidationFailed (unknown vehicle or
    pledge line, another recipient, weight unknown, future time, before the plan), NotLoadable,
    LoadBeforeCommitment (dated before the line's commitment), ExceedsRemaining, Overweight."""
    require_existing(state)
    _before_dispatch(state, "loading happens")
    if state.line(command.manifest_line_id) is not None:
        raise Conflict(f"manifest line {command.manifest_line_id} already exists on this convoy")
    _room_for_a_line(state)
    vehicle = state.vehicle(command.vehicle)
    if vehicle is None:
        known = ", ".join(v.registration for v in state.vehicles)
        raise errors.invalid(
            f"vehicle {command.vehicle} is not on convoy {state.convoy_id} (vehicles: {known})",
            name="vehicle",
            reason="unknown vehicle",
        )
    not_in_future(command.occurred_at, now)
    not_before(command.occurred_at, after_plan(state), now=now)
    line = _check_loadable(state, command, pledge_line)
    remaining = line.quantity - allocated
    if command.quantity > remaining:
        raise errors.ExceedsRemaining(
            f"pledge line {line.pledge_id}/{line.line_id} ({line.item}) has {text(line.quantity)}"
            f" {line.unit} committed, {text(allocated)} already loaded on convoys, so"
            f" {text(max(remaining, Decimal(0)))} remain: {text(command.quantity)} is too many",
            extra={
                "committed": text(line.quantity),
                "allocated": text(allocated),
                "remaining": text(max(remaining, Decimal(0))),
                "requested": text(command.quantity),
            },
        )
    weight = line_weight(line, command.quantity, command.weight_kg)
    on_board = state.vehicle_load(vehicle.registration)
    if on_board + weight > vehicle.capacity_kg:
        raise errors.Overweight(
            f"vehicle {vehicle.registration} carries {text(on_board)} kg; adding {text(weight)}"
            f" kg makes {text(on_board + weight)} kg, over its capacity of"
            f" {text(vehicle.capacity_kg)} kg",
            extra={
                "vehicle": vehicle.registration,
                "capacity_kg": text(vehicle.capacity_kg),
                "on_board_kg": text(on_board),
                "adding_kg": text(weight),
            },
        )
    data = ev.ManifestLineLoaded(
        convoy_id=state.convoy_id,
        manifest_line_id=command.manifest_line_id,
        pledge_id=line.pledge_id,
        line_id=line.line_id,
        donor_id=line.donor_id,
        recipient_id=line.recipient_id,
        item=line.item,
        category=line.category,
        unit=line.unit,
        quantity=text(command.quantity),
        weight_kg=text(weight),
        vehicle=vehicle.registration,
        correlation_id=line.correlation_id,
    )
    return [ev.CODEC.new(data, occurred_at=command.occurred_at)]


def unload(state: Convoy, command: UnloadLine, *, now: datetime) -> list[NewEvent]:
    """Gives the quantity back to the pledge line. Raises NotFound, WrongStatus,
    ValidationFailed (a time in the future, or before the plan or the line's load)."""
    require_existing(state)
    line = state.line(command.manifest_line_id)
    if line is None:
        raise NotFound(f"manifest line {command.manifest_line_id} is not on this convoy")
    _before_dispatch(state, "unloading happens")
    if line.state.value != "loaded":
        raise errors.WrongStatus(f"manifest line {line.manifest_line_id} was already unloaded")
    not_in_future(command.occurred_at, now)
    not_before(
        command.occurred_at,
        after_plan(state),
        (line.loaded_at, f"the load of manifest line {line.manifest_line_id}"),
        now=now,
    )
    data = ev.ManifestLineUnloaded(
        convoy_id=state.convoy_id,
        manifest_line_id=line.manifest_line_id,
        pledge_id=line.pledge_id,
        line_id=line.line_id,
        quantity=text(line.quantity),
        reason=command.reason,
    )
    return [ev.CODEC.new(data, occurred_at=command.occurred_at)]


def cancel(state: Convoy, command: CancelConvoy, *, now: datetime) -> list[NewEvent]:
    """Only before dispatch, dated no earlier than the plan and the manifest's last change;
    every loaded quantity goes back to its pledge line."""
    require_existing(state)
    _before_dispatch(state, "a convoy can be cancelled")
    not_in_future(command.occurred_at, now)
    not_before(
        command.occurred_at,
        after_plan(state),
        (state.manifest_changed_at, "the last load or unload"),
        now=now,
    )
    data = ev.ConvoyCancelled(
        convoy_id=state.convoy_id,
        reason=command.reason,
        released=[
            ev.ReleasedLine(
                manifest_line_id=x.manifest_line_id,
                pledge_id=x.pledge_id,
                line_id=x.line_id,
                quantity=text(x.quantity),
            )
            for x in state.loaded
        ],
    )
    return [ev.CODEC.new(data, occurred_at=command.occurred_at)]
