"""A convoy's steps as a GS1 EPCIS 2.0 JSON-LD document (CBV 2.0 business steps and
dispositions), built from the convoy and its timeline exactly as the caller may read them:
both come through auth.seen_by, so nothing here can show more than the convoy view and the
timeline (another donor's figures and named people stay cut).

Mapping (docs/exports.md, "EPCIS"):

- read points: a checkpoint's or border's coordinates as a `geo:` URI (RFC 5870); loading,
  departure, arrival and receiving at the origin's or destination's coordinates when the
  registry gives them, else the organisation's identifier URI;
- each manifest line is one class of objects, `.../id/pledge-line/<pledge>/<line>` (no GTINs:
  a class-level identifier standing where an LGTIN would), with its quantity and a UN/ECE
  Rec 20 unit (pieces H87, boxes XBX, kg KGM, tonnes TNE, litres LTR);
- loaded: ObjectEvent ADD, `loading`, `in_progress`; unloaded before dispatch: `unloading`;
- dispatch: `departing`, `in_transit`, owning party and location origin -> recipient;
- checkpoint: `transporting`, `in_transit` (CBV has no checkpoint step: the goods were seen
  on their way in a vehicle);
- border crossing: `inspecting`, `in_transit` while waiting or once cleared; `holding`,
  `in_transit` when held (CBV has no border step);
- custody hand-off: `accepting` (CBV: the objects change possession), possessing party from
  -> to;
- incidents: `transporting` with `damaged` (damage), `stolen` (theft), `unknown` (loss: where
  and in what state is not known), `unavailable` (seizure), `in_transit` (delay);
- arrival: `arriving`, `in_transit`;
- delivery: `receiving` with `in_progress` (received in good condition), `damaged` and
  `mismatch_quantity` (short), owning and possessing party -> recipient.

Quantities a caller may not see (another donor's line after it left) are left out of the
quantity element, which keeps only the class. Times are UTC (the log keeps instants, not the
sender's offset): eventTimeZoneOffset is +00:00.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.shipments import events as ev
from services.shipments.domain import LOSS_KINDS, dec
from services.shipments.formats.gs1 import (
    BORDER,
    CONTEXT,
    CONVOY,
    INCIDENT_DISPOSITION,
    MEDIA_TYPE,
    PLEDGE,
    UOM,
    class_uri,
    geo_uri,
    organisation_uri,
)
from services.shipments.formats.gs1 import ids as _id
from services.shipments.formats.gs1 import ni as _ni
from services.shipments.formats.gs1 import number as _number
from services.shipments.formats.gs1 import offset as _offset

__all__ = ["MEDIA_TYPE", "class_uri", "document", "geo_uri", "organisation_uri"]


class _Builder:
    def __init__(self, convoy: Mapping[str, Any]) -> None:
        self.convoy = convoy
        self.lines = {x["manifest_line_id"]: x for x in convoy["manifest"]}
        self.on_board: list[str] = []
        self.lost: dict[str, Decimal] = {}
        self.convoy_ref = {"type": CONVOY, "bizTransaction": _id("convoy", convoy["convoy_id"])}

    # -- parts -------------------------------------------------------------------------------

    def place(self, organisation_id: str, end: str) -> dict[str, str]:
        """The origin's or destination's coordinates when the convoy view gives them
        (`origin_location`, `destination_location`: the registry's), else its id."""
        coordinates = self.convoy.get(f"{end}_location")
        if coordinates:
            return {"id": geo_uri(coordinates)}
        return {"id": organisation_uri(organisation_id)}

    def visible(self, manifest_line_id: str) -> bool:
        """False for a line whose figures the caller may not see (auth.seen_by cut them)."""
        line = self.lines.get(manifest_line_id)
        return line is not None and line.get("lost") is not None

    def quantity(self, manifest_line_id: str, amount: str | Decimal | None) -> dict[str, Any]:
        line = self.lines[manifest_line_id]
        element: dict[str, Any] = {"epcClass": class_uri(line["pledge_id"], line["line_id"])}
        if amount is not None:
            element["quantity"] = _number(amount)
            element["uom"] = UOM[line["unit"]]
        return element

    def still_on_board(self) -> list[dict[str, Any]]:
        """Every line on board: what is left of it for lines the caller sees, else its class."""
        return [
            self.quantity(
                mid,
                dec(self.lines[mid]["quantity"]) - self.lost.get(mid, Decimal(0))
                if self.visible(mid)
                else None,
            )
            for mid in self.on_board
            if mid in self.lines
        ]

    def transactions(self, manifest_line_ids: list[str]) -> list[dict[str, str]]:
        pledges = sorted({self.lines[m]["pledge_id"] for m in manifest_line_ids if m in self.lines})
        return [self.convoy_ref] + [
            {"type": PLEDGE, "bizTransaction": _id("pledge", p)} for p in pledges
        ]

    def transfer(self) -> dict[str, Any]:
        c = self.convoy
        return {
            "sourceList": [
                {"type": "owning_party", "source": organisation_uri(c["origin_id"])},
                {"type": "location", "source": organisation_uri(c["origin_id"])},
            ],
            "destinationList": [
                {"type": "owning_party", "destination": organisation_uri(c["destination_id"])},
                {"type": "location", "destination": organisation_uri(c["destination_id"])},
            ],
        }

    # -- events ------------------------------------------------------------------------------

    def event(
        self,
        entry: Mapping[str, Any],
        *,
        part: str | None = None,
        action: str = "OBSERVE",
        biz_step: str,
        disposition: str | None,
        quantities: list[dict[str, Any]],
        read_point: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        occurred = datetime.fromisoformat(entry["occurred_at"])
        event_id = uuid.UUID(entry["event_id"])
        if part is not None:
            event_id = uuid.uuid5(event_id, part)
        out: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventID": event_id.urn,
            "eventTime": entry["occurred_at"],
            "eventTimeZoneOffset": _offset(occurred),
            "recordTime": entry["recorded_at"],
            "action": action,
        }
        if quantities:
            out["quantityList"] = quantities
        else:  # nothing the caller may see of what the event concerns
            out["epcList"] = []
        out["bizStep"] = biz_step
        if disposition is not None and quantities:
            out["disposition"] = disposition
        if read_point is not None:
            out["readPoint"] = dict(read_point)
        out["bizTransactionList"] = self.transactions(self._lines_of(quantities))
        data = entry["data"]
        out["twinaid:eventType"] = entry["event_type"]
        if entry.get("entry_id"):
            out["twinaid:entryId"] = entry["entry_id"]
        for key, value in extra.items():
            if value is not None:
                out[key] = value
        if data.get("note"):
            out["twinaid:note"] = data["note"]
        return out

    def _lines_of(self, quantities: list[dict[str, Any]]) -> list[str]:
        classes = {q["epcClass"] for q in quantities}
        return [
            mid
            for mid, line in self.lines.items()
            if class_uri(line["pledge_id"], line["line_id"]) in classes
        ]

    def line_event(
        self, entry: Mapping[str, Any], *, biz_step: str, disposition: str | None, **more: Any
    ) -> Iterator[dict[str, Any]]:
        """A manifest line loaded or unloaded: its quantity, at the origin (nothing for a line
        the convoy view does not show the caller)."""
        d = entry["data"]
        mid = d["manifest_line_id"]
        if mid in self.lines:
            yield self.event(
                entry,
                biz_step=biz_step,
                disposition=disposition,
                quantities=[self.quantity(mid, d["quantity"])],
                read_point=self.place(self.convoy["origin_id"], "origin"),
                **{"twinaid:manifestLineId": mid},
                **more,
            )

    def events(self, entry: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        t = entry["event_type"]
        d = entry["data"]
        c = self.convoy
        if t == ev.MANIFEST_LINE_LOADED:
            self.on_board.append(d["manifest_line_id"])
            yield from self.line_event(
                entry,
                action="ADD",
                biz_step="loading",
                disposition="in_progress",
                **{
                    "twinaid:item": d["item"],
                    "twinaid:donor": organisation_uri(d["donor_id"]),
                    "twinaid:vehicle": d.get("vehicle"),
                },
            )
        elif t == ev.MANIFEST_LINE_UNLOADED:
            if d["manifest_line_id"] in self.on_board:
                self.on_board.remove(d["manifest_line_id"])
            yield from self.line_event(
                entry, biz_step="unloading", disposition=None, **{"twinaid:reason": d.get("reason")}
            )
        elif t == ev.CONVOY_DISPATCHED:
            yield {
                **self.event(
                    entry,
                    biz_step="departing",
                    disposition="in_transit",
                    # what was loaded is on the manifest for every reader
                    quantities=[
                        self.quantity(mid, self.lines[mid]["quantity"])
                        for mid in self.on_board
                        if mid in self.lines
                    ],
                    read_point=self.place(c["origin_id"], "origin"),
                    **{"twinaid:custody": d.get("custody")},
                ),
                **self.transfer(),
            }
        elif t == ev.CHECKPOINT_RECORDED:
            coordinates = d.get("coordinates")
            yield self.event(
                entry,
                biz_step="transporting",
                disposition="in_transit",
                quantities=self.still_on_board(),
                read_point={"id": geo_uri(coordinates)} if coordinates else None,
                **{"twinaid:place": d.get("place")},
            )
        elif t == ev.BORDER_CROSSED:
            step, disposition = BORDER[d["outcome"]]
            coordinates = d.get("coordinates")
            yield self.event(
                entry,
                biz_step=step,
                disposition=disposition,
                quantities=self.still_on_board(),
                read_point={"id": geo_uri(coordinates)} if coordinates else None,
                **{
                    "twinaid:place": d.get("crossing_point"),
                    "twinaid:borderOutcome": d["outcome"],
                    "twinaid:fromCountry": d.get("from_country"),
                    "twinaid:toCountry": d.get("to_country"),
                    "twinaid:customsDocument": d.get("customs_document"),
                },
            )
        elif t == ev.CUSTODY_HANDED_OFF:
            out = self.event(
                entry,
                biz_step="accepting",
                disposition="in_transit",
                quantities=self.still_on_board(),
                **{"twinaid:fromParty": d.get("from_party"), "twinaid:toParty": d.get("to_party")},
            )
            source = (d.get("from_party") or {}).get("organisation_id")
            destination = (d.get("to_party") or {}).get("organisation_id")
            if source:
                out["sourceList"] = [
                    {"type": "possessing_party", "source": organisation_uri(source)}
                ]
            if destination:
                out["destinationList"] = [
                    {"type": "possessing_party", "destination": organisation_uri(destination)}
                ]
            yield out
        elif t == ev.INCIDENT_REPORTED:
            kind = d["kind"]
            if kind == "delay":
                quantities = self.still_on_board()
            else:  # the lines it names that the caller may see (seen_by kept only those)
                quantities = [
                    self.quantity(x["manifest_line_id"], x["quantity"])
                    for x in d.get("lines", ())
                    if x["manifest_line_id"] in self.lines
                ]
            yield self.event(
                entry,
                biz_step="transporting",
                disposition=INCIDENT_DISPOSITION[kind],
                quantities=quantities,
                **{
                    "twinaid:incident": kind,
                    "twinaid:description": d.get("description"),
                    "twinaid:place": d.get("place"),
                    "twinaid:delayMinutes": d.get("delay_minutes"),
                },
            )
            if kind in LOSS_KINDS:
                for x in d.get("lines", ()):
                    mid = x["manifest_line_id"]
                    self.lost[mid] = self.lost.get(mid, Decimal(0)) + dec(x["quantity"])
        elif t == ev.CONVOY_ARRIVED:
            yield self.event(
                entry,
                biz_step="arriving",
                disposition="in_transit",
                quantities=self.still_on_board(),
                read_point=self.place(c["destination_id"], "destination"),
                **{"twinaid:place": d.get("place")},
            )
        elif t == ev.DELIVERY_CONFIRMED:
            yield from self.delivery(entry)

    def delivery(self, entry: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        d = entry["data"]
        c = self.convoy
        lines = [x for x in d["lines"] if x["manifest_line_id"] in self.lines]
        parties = self.transfer()
        holder = (c.get("custody") or {}).get("organisation_id")
        if holder:
            parties["sourceList"].append(
                {"type": "possessing_party", "source": organisation_uri(holder)}
            )
        parties["destinationList"].append(
            {"type": "possessing_party", "destination": organisation_uri(c["destination_id"])}
        )
        common = {
            "read_point": self.place(c["destination_id"], "destination"),
            "twinaid:confirmedBy": d.get("confirmed_by"),
        }
        document = d.get("document")
        for part, disposition, key in (
            (None, "in_progress", "received"),
            ("damaged", "damaged", "damaged"),
            ("short", "mismatch_quantity", "short"),
        ):
            if part is None:  # every line, with its figure when the caller may see it
                quantities = [self.quantity(x["manifest_line_id"], x[key]) for x in lines]
            else:
                quantities = [
                    self.quantity(x["manifest_line_id"], x[key])
                    for x in lines
                    if x.get(key) is not None and dec(x[key]) > 0
                ]
                if not quantities:
                    continue
            out = self.event(
                entry,
                part=part,
                biz_step="receiving",
                disposition=disposition,
                quantities=quantities,
                **common,
            )
            out["bizLocation"] = {"id": organisation_uri(c["destination_id"])}
            if document:
                out["bizTransactionList"].append(
                    {"type": "recadv", "bizTransaction": _ni(document["sha256"])}
                )
            yield {**out, **parties}


def document(
    convoy: Mapping[str, Any], timeline: Mapping[str, Any], *, now: datetime
) -> dict[str, Any]:
    """The EPCISDocument of a convoy, from its document and timeline as the caller reads them
    (queries.convoy and queries.timeline: both cut by auth.seen_by)."""
    builder = _Builder(convoy)
    events = [e for entry in timeline["entries"] for e in builder.events(entry)]
    return {
        "@context": CONTEXT,
        "id": _id("convoy", convoy["convoy_id"], "epcis"),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": now.isoformat(),
        "epcisBody": {"eventList": events},
    }
