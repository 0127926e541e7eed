"""A convoy's state as JSON and back, for snapshots (shared/snapshots.py): decimals as strings,
instants in ISO 8601 with their offset. decode(encode(state)) == state.

FORMAT names the shape: bump it whenever Convoy's fields, or what evolve folds into them, change
(a snapshot of another format is ignored and the convoy folded from its log again). A kept
event's data goes with the schema version it was stored with, so it decodes as it would from
the log (v2: entries and the delivery keep it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.shipments.domain.model import Convoy
from services.shipments.domain.values import Delivery, Entry, Line, LineState, Vehicle

__all__ = ["FORMAT", "decode", "encode"]

FORMAT = "shipments.convoy.v2"


def _t(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _d(value: str) -> Decimal:
    return Decimal(value)


def _entry(e: Entry | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "entry_id": e.entry_id,
        "kind": e.kind,
        "event_type": e.event_type,
        "event_id": e.event_id,
        "occurred_at": e.occurred_at.isoformat(),
        "recorded_at": e.recorded_at.isoformat(),
        "digest": e.digest,
        "data": e.data,
        "version": e.version,
        "schema_version": e.schema_version,
    }


def _entry_back(d: Mapping[str, Any] | None) -> Entry | None:
    if d is None:
        return None
    return Entry(
        entry_id=d["entry_id"],
        kind=d["kind"],
        event_type=d["event_type"],
        event_id=d["event_id"],
        occurred_at=datetime.fromisoformat(d["occurred_at"]),
        recorded_at=datetime.fromisoformat(d["recorded_at"]),
        digest=d["digest"],
        data=d["data"],
        version=d["version"],
        schema_version=d["schema_version"],
    )


def _line(x: Line) -> dict[str, Any]:
    return {
        "manifest_line_id": x.manifest_line_id,
        "pledge_id": x.pledge_id,
        "line_id": x.line_id,
        "donor_id": x.donor_id,
        "recipient_id": x.recipient_id,
        "item": x.item,
        "category": x.category,
        "unit": x.unit,
        "quantity": str(x.quantity),
        "weight_kg": str(x.weight_kg),
        "vehicle": x.vehicle,
        "correlation_id": x.correlation_id,
        "loaded_at": x.loaded_at.isoformat(),
        "state": x.state.value,
    }


def _line_back(d: Mapping[str, Any]) -> Line:
    return Line(
        manifest_line_id=d["manifest_line_id"],
        pledge_id=d["pledge_id"],
        line_id=d["line_id"],
        donor_id=d["donor_id"],
        recipient_id=d["recipient_id"],
        item=d["item"],
        category=d["category"],
        unit=d["unit"],
        quantity=_d(d["quantity"]),
        weight_kg=_d(d["weight_kg"]),
        vehicle=d["vehicle"],
        correlation_id=d["correlation_id"],
        loaded_at=datetime.fromisoformat(d["loaded_at"]),
        state=LineState(d["state"]),
    )


def encode(state: Convoy) -> dict[str, Any]:
    delivery = state.delivery
    return {
        "convoy_id": state.convoy_id,
        "version": state.version,
        "reference": state.reference,
        "origin_id": state.origin_id,
        "destination_id": state.destination_id,
        "carrier_id": state.carrier_id,
        "planned_departure": _t(state.planned_departure),
        "planned_at": _t(state.planned_at),
        "vehicles": [
            {"registration": v.registration, "type": v.type, "capacity_kg": str(v.capacity_kg)}
            for v in state.vehicles
        ],
        "drivers": [dict(d) for d in state.drivers],
        "route": list(state.route),
        "note": state.note,
        "lines": [_line(x) for x in state.lines],
        "entry_count": state.entry_count,
        "last_news": _entry(state.last_news),
        "position": _entry(state.position),
        "custody_change": _entry(state.custody_change),
        "last_border": _entry(state.last_border),
        "first_arrival": _entry(state.first_arrival),
        "incidents": [_entry(e) for e in state.incidents],
        "incident_count": state.incident_count,
        "losses": [[line, str(quantity)] for line, quantity in state.losses],
        "last_recorded_at": _t(state.last_recorded_at),
        "dispatched_at": _t(state.dispatched_at),
        "delivery": (
            {
                "occurred_at": delivery.occurred_at.isoformat(),
                "recorded_at": delivery.recorded_at.isoformat(),
                "data": delivery.data,
                "schema_version": delivery.schema_version,
            }
            if delivery is not None
            else None
        ),
        "closed_at": _t(state.closed_at),
        "cancelled_at": _t(state.cancelled_at),
        "cancel_reason": state.cancel_reason,
    }


def decode(d: Mapping[str, Any]) -> Convoy:
    delivery = d["delivery"]
    incidents = tuple(_entry_back(e) for e in d["incidents"])
    return Convoy(
        convoy_id=d["convoy_id"],
        version=d["version"],
        reference=d["reference"],
        origin_id=d["origin_id"],
        destination_id=d["destination_id"],
        carrier_id=d["carrier_id"],
        planned_departure=_dt(d["planned_departure"]),
        planned_at=_dt(d["planned_at"]),
        vehicles=tuple(
            Vehicle(v["registration"], v["type"], _d(v["capacity_kg"])) for v in d["vehicles"]
        ),
        drivers=tuple(d["drivers"]),
        route=tuple(d["route"]),
        note=d["note"],
        lines=tuple(_line_back(x) for x in d["lines"]),
        entry_count=d["entry_count"],
        last_news=_entry_back(d["last_news"]),
        position=_entry_back(d["position"]),
        custody_change=_entry_back(d["custody_change"]),
        last_border=_entry_back(d["last_border"]),
        first_arrival=_entry_back(d["first_arrival"]),
        incidents=tuple(e for e in incidents if e is not None),
        incident_count=d["incident_count"],
        losses=tuple((line, _d(quantity)) for line, quantity in d["losses"]),
        last_recorded_at=_dt(d["last_recorded_at"]),
        dispatched_at=_dt(d["dispatched_at"]),
        delivery=(
            Delivery(
                datetime.fromisoformat(delivery["occurred_at"]),
                datetime.fromisoformat(delivery["recorded_at"]),
                delivery["data"],
                delivery["schema_version"],
            )
            if delivery is not None
            else None
        ),
        closed_at=_dt(d["closed_at"]),
        cancelled_at=_dt(d["cancelled_at"]),
        cancel_reason=d["cancel_reason"],
    )
