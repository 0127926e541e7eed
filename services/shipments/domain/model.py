"""A convoy's state, folded from its events, and what follows from it (status, losses, custody).

Road events may be recorded late and in any order, so whatever depends on the course of the
trip (status, position, custody) follows the road entries in the order they occurred (recording
order breaks ties: the key (occurred_at, version)), never the order they were recorded in.

The state is flat: it keeps what the rules and the views read of the road, summaries updated
entry by entry (the latest news, place, custody, border crossing and incidents, the first
arrival, the losses per line), never the list of every entry, so folding one more event costs
the same however long the convoy's history is. Whether an entry id was recorded already is
asked of the log (road.record_entries takes the entries found).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.shipments import events as ev
from services.shipments.domain.values import (
    LOSS_KINDS,
    Delivery,
    Entry,
    Line,
    LineState,
    Vehicle,
    dec,
)
from shared.codec import Event
from shared.domain_checks import Record

__all__ = ["INCIDENTS_KEPT", "ON_THE_ROAD", "Convoy", "ConvoyStatus", "entry_of", "evolve"]

ZERO = Decimal(0)
# the latest incidents a convoy's state keeps (in road order) for its view; the timeline has all
INCIDENTS_KEPT = 100


class ConvoyStatus(StrEnum):
    PLANNED = "planned"
    LOADING = "loading"
    IN_TRANSIT = "in_transit"
    AT_BORDER = "at_border"
    HELD = "held"
    ARRIVED = "arrived"
    DELIVERED = "delivered"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    # everything on board recorded stolen, lost or seized: told apart from still in transit
    LOST = "lost"


ON_THE_ROAD = (ConvoyStatus.IN_TRANSIT, ConvoyStatus.AT_BORDER, ConvoyStatus.HELD)


@dataclass(frozen=True, slots=True)
class Convoy(Record):
    convoy_id: str
    version: int = 0
    reference: str = ""
    origin_id: str = ""
    destination_id: str = ""
    carrier_id: str = ""
    planned_departure: datetime | None = None
    planned_at: datetime | None = None
    # the latest instant the plan or the manifest changed (plan, load, unload): office writes
    # that follow them (a cancellation) are dated no earlier
    manifest_changed_at: datetime | None = None
    vehicles: tuple[Vehicle, ...] = ()
    drivers: tuple[Mapping[str, Any], ...] = ()
    route: tuple[str, ...] = ()
    note: str | None = None
    lines: tuple[Line, ...] = ()
    # the road, summarised (see the module's docstring): entries recorded, and by road order
    # the latest entry, place (checkpoint or border crossing), custody change (dispatch or
    # hand-off) and border crossing, the first arrival, the latest INCIDENTS_KEPT incidents
    entry_count: int = 0
    last_news: Entry | None = None
    position: Entry | None = None
    custody_change: Entry | None = None
    last_border: Entry | None = None
    first_arrival: Entry | None = None
    incidents: tuple[Entry, ...] = ()
    incident_count: int = 0
    # quantity recorded stolen, lost or seized, per manifest line, in the order first recorded
    losses: tuple[tuple[str, Decimal], ...] = ()
    last_recorded_at: datetime | None = None
    dispatched_at: datetime | None = None
    delivery: Delivery | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    @property
    def loaded(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.state is LineState.LOADED)

    @property
    def donors(self) -> frozenset[str]:
        return frozenset(line.donor_id for line in self.loaded)

    def line(self, manifest_line_id: str) -> Line | None:
        return next((x for x in self.lines if x.manifest_line_id == manifest_line_id), None)

    def vehicle(self, registration: str) -> Vehicle | None:
        return next((v for v in self.vehicles if v.registration == registration), None)

    def vehicle_load(self, registration: str) -> Decimal:
        return sum((x.weight_kg for x in self.loaded if x.vehicle == registration), ZERO)

    @property
    def weight_kg(self) -> Decimal:
        return sum((x.weight_kg for x in self.loaded), ZERO)

    def lost(self) -> dict[str, Decimal]:
        """Quantity recorded stolen, lost or seized, per manifest line."""
        return dict(self.losses)

    @property
    def all_lost(self) -> bool:
        lost = self.lost()
        loaded = self.loaded
        return bool(loaded) and all(
            lost.get(x.manifest_line_id, ZERO) >= x.quantity for x in loaded
        )

    @property
    def arrived_at(self) -> datetime | None:
        return self.first_arrival.occurred_at if self.first_arrival is not None else None

    @property
    def status(self) -> ConvoyStatus:
        """An arrival outweighs losses: a convoy whose whole load was recorded lost and that
        arrived is arrived (its delivery follows, giving loaded - lost per line)."""
        if self.cancelled_at is not None:
            return ConvoyStatus.CANCELLED
        if self.closed_at is not None:
            return ConvoyStatus.CLOSED
        if self.delivery is not None:
            return ConvoyStatus.DELIVERED
        if self.dispatched_at is None:
            return ConvoyStatus.LOADING if self.loaded else ConvoyStatus.PLANNED
        if self.first_arrival is not None:
            return ConvoyStatus.ARRIVED
        if self.all_lost:
            return ConvoyStatus.LOST
        if self.last_border is not None:
            border = self.last_border.payload
            assert isinstance(border, ev.BorderCrossed)
            return {
                "waiting": ConvoyStatus.AT_BORDER,
                "cleared": ConvoyStatus.IN_TRANSIT,
                "held": ConvoyStatus.HELD,
            }[border.outcome]
        return ConvoyStatus.IN_TRANSIT

    @property
    def custody(self) -> Mapping[str, Any] | None:
        e = self.custody_change
        if e is None:
            return None
        match e.payload:
            case ev.ConvoyDispatched() | ev.V1.ConvoyDispatched() as dispatched:
                holder = dispatched.custody
            case ev.CustodyHandedOff() | ev.V1.CustodyHandedOff() as handed:
                holder = handed.to_party
            case _:
                return None
        return holder.model_dump(mode="json", exclude_unset=True)  # the party as stored


def _key(entry: Entry) -> tuple[datetime, int]:
    """Road order: when it occurred, recording order breaking ties."""
    return (entry.occurred_at, entry.version)


def _later(kept: Entry | None, entry: Entry) -> Entry:
    return entry if kept is None or _key(entry) > _key(kept) else kept


def _earlier(kept: Entry | None, entry: Entry) -> Entry:
    return entry if kept is None or _key(entry) < _key(kept) else kept


def _with_incident(kept: tuple[Entry, ...], entry: Entry) -> tuple[Entry, ...]:
    """The latest INCIDENTS_KEPT of `kept` and `entry`, in road order."""
    key = _key(entry)
    at = len(kept)
    while at > 0 and _key(kept[at - 1]) > key:
        at -= 1
    return (*kept[:at], entry, *kept[at:])[-INCIDENTS_KEPT:]


def _with_losses(
    losses: tuple[tuple[str, Decimal], ...], incident: ev.IncidentReported
) -> tuple[tuple[str, Decimal], ...]:
    out = dict(losses)
    for affected in incident.lines:
        key = affected.manifest_line_id
        out[key] = out.get(key, ZERO) + dec(affected.quantity)
    return tuple(out.items())


def _on_the_road(state: Convoy, entry: Entry, payload: ev.EntryPayload) -> Convoy:
    """`state` with one more road entry, whenever it occurred (one copy of the state: the
    entries are most of a convoy's log)."""
    kind = entry.kind
    changes: dict[str, Any] = {
        "version": entry.version,
        "entry_count": state.entry_count + 1,
        "last_news": _later(state.last_news, entry),
        "last_recorded_at": (
            entry.recorded_at
            if state.last_recorded_at is None or entry.recorded_at > state.last_recorded_at
            else state.last_recorded_at
        ),
    }
    if kind in ("checkpoint", "border_crossing"):
        changes["position"] = _later(state.position, entry)
    if kind == "border_crossing":
        changes["last_border"] = _later(state.last_border, entry)
    elif kind in ("dispatch", "custody_handoff"):
        changes["custody_change"] = _later(state.custody_change, entry)
    elif kind == "arrival":
        changes["first_arrival"] = _earlier(state.first_arrival, entry)
    if kind == "dispatch":
        changes["dispatched_at"] = entry.occurred_at
    elif isinstance(payload, ev.IncidentReported):
        changes["incidents"] = _with_incident(state.incidents, entry)
        changes["incident_count"] = state.incident_count + 1
        if payload.kind in LOSS_KINDS:
            changes["losses"] = _with_losses(state.losses, payload)
    return replace(state, **changes)


def entry_of(event: Event[Any]) -> Entry:
    """The road entry a road event records."""
    return _entry(event, _KIND_OF[event.event_type])


def _entry(event: Event[Any], kind: str) -> Entry:
    payload: ev.EntryPayload = event.payload
    return Entry(
        entry_id=payload.entry_id,
        kind=kind,
        event_type=event.event_type,
        event_id=str(event.event_id),
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        digest=payload.entry_sha256,
        data=event.recorded.data,  # the stored form, as views show it
        version=event.stream_version,
        schema_version=event.schema_version,
        decoded=payload,
    )


def _line(event: Event[ev.ManifestLineLoaded]) -> Line:
    p = event.payload
    return Line(
        manifest_line_id=p.manifest_line_id,
        pledge_id=p.pledge_id,
        line_id=p.line_id,
        donor_id=p.donor_id,
        recipient_id=p.recipient_id,
        item=p.item,
        category=p.category,
        unit=p.unit,
        quantity=dec(p.quantity),
        weight_kg=dec(p.weight_kg),
        vehicle=p.vehicle,
        correlation_id=p.correlation_id,
        loaded_at=event.occurred_at,
    )


def _latest(kept: datetime | None, at: datetime) -> datetime:
    return at if kept is None or at > kept else kept


def _set_line_state(state: Convoy, ids: set[str], to: LineState) -> tuple[Line, ...]:
    return tuple(
        replace(x, state=to) if x.manifest_line_id in ids and x.state is LineState.LOADED else x
        for x in state.lines
    )


_KIND_OF = {event_type: kind for kind, event_type in ev.ENTRY_EVENTS.items()}


def evolve(state: Convoy, event: Event[Any]) -> Convoy:
    """`state` with one more event of its log, decoded (events.CODEC)."""
    kind = _KIND_OF.get(event.event_type)
    if kind is not None:
        return _on_the_road(state, _entry(event, kind), event.payload)
    version = event.stream_version
    match event.payload:
        case ev.ConvoyPlanned() | ev.V1.ConvoyPlanned() as p:
            return replace(
                state,
                version=version,
                reference=p.reference,
                origin_id=p.origin_id,
                destination_id=p.destination_id,
                carrier_id=p.carrier_id,
                planned_departure=p.planned_departure,
                planned_at=event.occurred_at,
                manifest_changed_at=_latest(state.manifest_changed_at, event.occurred_at),
                vehicles=tuple(
                    Vehicle(v.registration, v.type, dec(v.capacity_kg)) for v in p.vehicles
                ),
                # as stored (sealed, or in clear in version 1): views show them so
                drivers=tuple(d.model_dump(mode="json", exclude_unset=True) for d in p.drivers),
                route=tuple(p.route),
                note=p.note,
            )
        case ev.ManifestLineLoaded():
            return replace(
                state,
                version=version,
                lines=(*state.lines, _line(event)),
                manifest_changed_at=_latest(state.manifest_changed_at, event.occurred_at),
            )
        case ev.ManifestLineUnloaded() as p:
            return replace(
                state,
                version=version,
                lines=_set_line_state(state, {p.manifest_line_id}, LineState.UNLOADED),
                manifest_changed_at=_latest(state.manifest_changed_at, event.occurred_at),
            )
        case ev.DeliveryConfirmed() | ev.V1.DeliveryConfirmed() as p:
            delivery = Delivery(
                event.occurred_at, event.recorded_at, event.recorded.data, event.schema_version, p
            )
            return replace(state, version=version, delivery=delivery)
        case ev.ConvoyClosed():
            return replace(state, version=version, closed_at=event.occurred_at)
        case ev.ConvoyCancelled() as p:
            released = {r.manifest_line_id for r in p.released}
            return replace(
                state,
                version=version,
                cancelled_at=event.occurred_at,
                cancel_reason=p.reason,
                lines=_set_line_state(state, released, LineState.RELEASED),
            )
    return replace(state, version=version)
