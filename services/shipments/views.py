"""A convoy as trackers read it, built from its folded state: the read model stores this
document, and `?as_of=` builds the same from the log. Who may see which parts is auth.py's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from services.shipments import domain
from services.shipments import events as ev
from services.shipments.domain import ConvoyStatus, dec, text

ZERO = Decimal(0)
# a convoy's view embeds its latest incidents (the state keeps those); its timeline has them all
INCIDENTS_SHOWN = domain.INCIDENTS_KEPT


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _json(value: BaseModel | None) -> dict[str, Any] | None:
    """A part of an event's payload as the log stores it."""
    return value.model_dump(mode="json", exclude_unset=True) if value is not None else None


def _delivered(state: domain.Convoy) -> dict[str, ev.DeliveredLine]:
    """The delivered lines by manifest line ({} before the delivery)."""
    lines = state.delivery.payload.lines if state.delivery else []
    return {x.manifest_line_id: x for x in lines}


def _news(entry: domain.Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "kind": entry.kind,
        "entry_id": entry.entry_id,
        "occurred_at": entry.occurred_at.isoformat(),
        "recorded_at": entry.recorded_at.isoformat(),
    }


def position(state: domain.Convoy) -> dict[str, Any] | None:
    entry = state.position
    if entry is None:
        return None
    seen = entry.payload
    assert isinstance(seen, ev.CheckpointRecorded | ev.BorderCrossed)
    place = seen.place if isinstance(seen, ev.CheckpointRecorded) else seen.crossing_point
    return {
        "place": place,
        "coordinates": _json(seen.coordinates),
        "source": entry.kind,
        "occurred_at": entry.occurred_at.isoformat(),
        "recorded_at": entry.recorded_at.isoformat(),
    }


def _named(line: domain.Line) -> dict[str, Any]:
    """What names a manifest line and its goods, first in each view of the line."""
    return {
        "manifest_line_id": line.manifest_line_id,
        "pledge_id": line.pledge_id,
        "line_id": line.line_id,
        "donor_id": line.donor_id,
        "item": line.item,
    }


def _lines(state: domain.Convoy) -> list[dict[str, Any]]:
    lost = state.lost()
    delivered = _delivered(state)
    on_road = state.status in domain.ON_THE_ROAD or state.status is ConvoyStatus.ARRIVED
    out = []
    for line in state.lines:
        lost_here = lost.get(line.manifest_line_id, ZERO)
        active = line.state is domain.LineState.LOADED
        got = delivered.get(line.manifest_line_id)
        out.append(
            {
                **_named(line),
                "category": line.category,
                "unit": line.unit,
                "quantity": text(line.quantity),
                "weight_kg": text(line.weight_kg),
                "vehicle": line.vehicle,
                "correlation_id": line.correlation_id,
                "state": line.state.value,
                "loaded_at": line.loaded_at.isoformat(),
                "lost": text(lost_here),
                # still on its way: neither lost nor delivered yet
                "in_transit": text(line.quantity - lost_here) if active and on_road else "0",
                "delivered": (
                    {"received": got.received, "damaged": got.damaged, "short": got.short}
                    if got
                    else None
                ),
            }
        )
    return out


def discrepancies(state: domain.Convoy) -> list[dict[str, Any]]:
    """Lines where less arrived in good condition than was loaded, with why."""
    lost = state.lost()
    delivered = _delivered(state)
    out = []
    for line in state.loaded:
        lost_here = lost.get(line.manifest_line_id, ZERO)
        got = delivered.get(line.manifest_line_id)
        damaged = dec(got.damaged) if got else ZERO
        short = dec(got.short) if got else ZERO
        if lost_here == damaged == short == ZERO:
            continue
        out.append(
            {
                **_named(line),
                "unit": line.unit,
                "loaded": text(line.quantity),
                "received": got.received if got else None,
                "damaged": text(damaged),
                "short": text(short),
                "lost": text(lost_here),
            }
        )
    return out


def _incidents(state: domain.Convoy) -> list[dict[str, Any]]:
    """The latest INCIDENTS_SHOWN incidents, in the order they occurred."""
    out = []
    for e in state.incidents:
        incident = e.payload
        assert isinstance(incident, ev.IncidentReported)
        out.append(
            {
                "entry_id": e.entry_id,
                "kind": incident.kind,
                "description": incident.description,
                "place": incident.place,
                "delay_minutes": incident.delay_minutes,
                "lines": [_json(x) for x in incident.lines],
                "occurred_at": e.occurred_at.isoformat(),
                "recorded_at": e.recorded_at.isoformat(),
            }
        )
    return out


def document(state: domain.Convoy) -> dict[str, Any]:
    """Everything about a convoy, personal data included (auth.py redacts it)."""
    delivery = state.delivery
    return {
        "convoy_id": state.convoy_id,
        "reference": state.reference,
        "status": state.status.value,
        "origin_id": state.origin_id,
        "destination_id": state.destination_id,
        "carrier_id": state.carrier_id,
        "planned_departure": _iso(state.planned_departure),
        "planned_at": _iso(state.planned_at),
        "dispatched_at": _iso(state.dispatched_at),
        "arrived_at": _iso(state.arrived_at),
        "delivered_at": _iso(delivery.occurred_at if delivery else None),
        "closed_at": _iso(state.closed_at),
        "cancelled_at": _iso(state.cancelled_at),
        "cancel_reason": state.cancel_reason,
        "route": list(state.route),
        "note": state.note,
        "vehicles": [
            {
                "registration": v.registration,
                "type": v.type,
                "capacity_kg": text(v.capacity_kg),
                "load_kg": text(state.vehicle_load(v.registration)),
            }
            for v in state.vehicles
        ],
        "drivers": [dict(d) for d in state.drivers],
        "manifest": _lines(state),
        "weight_kg": text(state.weight_kg),
        "position": position(state),
        "custody": state.custody,
        "last_news": _news(state.last_news),
        "incidents": _incidents(state),
        "incidents_total": state.incident_count,
        "delivery": (
            {
                "outcome": "partial" if delivery.partial else "full",
                "occurred_at": delivery.occurred_at.isoformat(),
                "recorded_at": delivery.recorded_at.isoformat(),
                "confirmed_by": _json(delivery.payload.confirmed_by),
                "document": _json(delivery.payload.document),
            }
            if delivery
            else None
        ),
        "discrepancies": discrepancies(state),
        "version": state.version,
    }


def with_locations(
    document: Mapping[str, Any], places: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """The document with where its origin and destination are, `{"lat", "lon"}` or None:
    `places` (organisation id -> coordinates) is the directory's, as the registry says now
    (directory.locations). Not part of `document`: where an organisation is belongs to the
    registry, not to the convoy's log, and may be corrected after the convoy was planned."""

    def at(organisation_id: str) -> dict[str, float] | None:
        place = places.get(organisation_id)
        return None if place is None else {"lat": place["lat"], "lon": place["lon"]}

    return {
        **document,
        "origin_location": at(document["origin_id"]),
        "destination_location": at(document["destination_id"]),
    }


def recent_incidents(document: Mapping[str, Any]) -> dict[str, Any]:
    """A convoy's view as answered: its latest INCIDENTS_SHOWN incidents (in the order they
    occurred) and how many there are (`incidents_total`); the timeline pages through them all.
    `document` has them so already; a row written before it kept only those (rebuilt since or
    not) is cut here."""
    incidents = document["incidents"]
    return {
        **document,
        "incidents": incidents[-INCIDENTS_SHOWN:],
        "incidents_total": document.get("incidents_total", len(incidents)),
    }
