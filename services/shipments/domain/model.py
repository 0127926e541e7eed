"""A convoy's state, folded from its events, and what follows from it (status, losses, custody).

Road events may be recorded late and in any order, so whatever depends on the course of the
trip (status, position, custody) is read from the road entries sorted by when they occurred,
never by when they were recorded.
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
from shared.events import RecordedEvent

__all__ = ["ON_THE_ROAD", "Convoy", "ConvoyStatus", "evolve"]

ZERO = Decimal(0)


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
class Convoy:
    convoy_id: str
    version: int = 0
    reference: str = ""
    origin_id: str = ""
    destination_id: str = ""
    carrier_id: str = ""
    planned_departure: datetime | None = None
    planned_at: datetime | None = None
    vehicles: tuple[Vehicle, ...] = ()
    drivers: tuple[Mapping[str, Any], ...] = ()
    route: tuple[str, ...] = ()
    note: str | None = None
    lines: tuple[Line, ...] = ()
    entries: tuple[Entry, ...] = ()
    dispatched_at: datetime | None = None
    delivery: Delivery | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    @property
    def exists(self) -> bool:
        return self.version > 0

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

    def entry(self, entry_id: str) -> Entry | None:
        return next((e for e in self.entries if e.entry_id == entry_id), None)

    @property
    def road(self) -> list[Entry]:
        """Road entries in the order they occurred (recording order breaks ties)."""
        return sorted(self.entries, key=lambda e: (e.occurred_at, e.version))

    def lost(self) -> dict[str, Decimal]:
        """Quantity recorded stolen, lost or seized, per manifest line."""
        out: dict[str, Decimal] = {}
        for e in self.entries:
            if e.kind == "incident" and e.data["kind"] in LOSS_KINDS:
                for affected in e.data["lines"]:
                    key = affected["manifest_line_id"]
                    out[key] = out.get(key, ZERO) + dec(affected["quantity"])
        return out

    @property
    def all_lost(self) -> bool:
        lost = self.lost()
        loaded = self.loaded
        return bool(loaded) and all(
            lost.get(x.manifest_line_id, ZERO) >= x.quantity for x in loaded
        )

    @property
    def arrived_at(self) -> datetime | None:
        return next((e.occurred_at for e in self.road if e.kind == "arrival"), None)

    @property
    def status(self) -> ConvoyStatus:
        if self.cancelled_at is not None:
            return ConvoyStatus.CANCELLED
        if self.closed_at is not None:
            return ConvoyStatus.CLOSED
        if self.delivery is not None:
            return ConvoyStatus.DELIVERED
        if self.dispatched_at is None:
            return ConvoyStatus.LOADING if self.loaded else ConvoyStatus.PLANNED
        if self.all_lost:
            return ConvoyStatus.LOST
        status = ConvoyStatus.IN_TRANSIT
        for e in self.road:
            if e.kind == "arrival":
                return ConvoyStatus.ARRIVED
            if e.kind == "border_crossing":
                status = {
                    "waiting": ConvoyStatus.AT_BORDER,
                    "cleared": ConvoyStatus.IN_TRANSIT,
                    "held": ConvoyStatus.HELD,
                }[e.data["outcome"]]
        return status

    @property
    def position(self) -> Entry | None:
        """The last place the convoy was seen: a checkpoint or a border crossing."""
        places = [e for e in self.road if e.kind in ("checkpoint", "border_crossing")]
        return places[-1] if places else None

    @property
    def custody(self) -> Mapping[str, Any] | None:
        holder: Mapping[str, Any] | None = None
        for e in self.road:
            if e.kind == "dispatch":
                holder = e.data["custody"]
            elif e.kind == "custody_handoff":
                holder = e.data["to_party"]
        return holder

    @property
    def last_news(self) -> Entry | None:
        road = self.road
        return road[-1] if road else None


def _entry(event: RecordedEvent, kind: str) -> Entry:
    return Entry(
        entry_id=event.data["entry_id"],
        kind=kind,
        event_type=event.event_type,
        event_id=str(event.event_id),
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        digest=event.data["entry_sha256"],
        data=event.data,
        version=event.stream_version,
    )


def _line(event: RecordedEvent) -> Line:
    d = event.data
    return Line(
        manifest_line_id=d["manifest_line_id"],
        pledge_id=d["pledge_id"],
        line_id=d["line_id"],
        donor_id=d["donor_id"],
        recipient_id=d["recipient_id"],
        item=d["item"],
        category=d.get("category"),
        unit=d["unit"],
        quantity=dec(d["quantity"]),
        weight_kg=dec(d["weight_kg"]),
        vehicle=d["vehicle"],
        correlation_id=d.get("correlation_id"),
        loaded_at=event.occurred_at,
    )


def _set_line_state(state: Convoy, ids: set[str], to: LineState) -> tuple[Line, ...]:
    return tuple(
        replace(x, state=to) if x.manifest_line_id in ids and x.state is LineState.LOADED else x
        for x in state.lines
    )


_KIND_OF = {event_type: kind for kind, event_type in ev.ENTRY_EVENTS.items()}


def evolve(state: Convoy, event: RecordedEvent) -> Convoy:
    d = event.data
    state = replace(state, version=event.stream_version)
    t = event.event_type
    if t == ev.CONVOY_PLANNED:
        return replace(
            state,
            reference=d["reference"],
            origin_id=d["origin_id"],
            destination_id=d["destination_id"],
            carrier_id=d["carrier_id"],
            planned_departure=datetime.fromisoformat(d["planned_departure"]),
            planned_at=event.occurred_at,
            vehicles=tuple(
                Vehicle(v["registration"], v["type"], dec(v["capacity_kg"])) for v in d["vehicles"]
            ),
            drivers=tuple(d.get("drivers", ())),
            route=tuple(d.get("route", ())),
            note=d.get("note"),
        )
    if t == ev.MANIFEST_LINE_LOADED:
        return replace(state, lines=(*state.lines, _line(event)))
    if t == ev.MANIFEST_LINE_UNLOADED:
        return replace(
            state, lines=_set_line_state(state, {d["manifest_line_id"]}, LineState.UNLOADED)
        )
    if t in _KIND_OF:
        entry = _entry(event, _KIND_OF[t])
        state = replace(state, entries=(*state.entries, entry))
        if t == ev.CONVOY_DISPATCHED:
            state = replace(state, dispatched_at=event.occurred_at)
        return state
    if t == ev.DELIVERY_CONFIRMED:
        return replace(state, delivery=Delivery(event.occurred_at, event.recorded_at, d))
    if t == ev.CONVOY_CLOSED:
        return replace(state, closed_at=event.occurred_at)
    if t == ev.CONVOY_CANCELLED:
        released = {r["manifest_line_id"] for r in d["released"]}
        return replace(
            state,
            cancelled_at=event.occurred_at,
            cancel_reason=d["reason"],
            lines=_set_line_state(state, released, LineState.RELEASED),
        )
    return state
