"""Convoys, a convoy's manifest, deliveries and discrepancies as HXL-tagged CSV
(shared/hxl.py), built from the convoy documents exactly as the caller may read them (every
row comes from auth.convoy_for / seen_by: another donor's figures are empty cells).

HXL (docs/exports.md, "HXL for convoys"): the convoy is `#activity` (+code its id, +name its
reference); FTS-style organisations: donors `#org+funder`, the recipient `#org+impl`, the
origin `#org+origin`, the carrier `#org+carrier` (+code the registry id, the bare tag its
name); goods `#item+name`, `#item+type` (category), `#item+unit`, `#item+code` (the class
identifier the EPCIS export uses); quantities `#indicator+num+<what>`; dates `#date+<what>`;
last position `#loc+name`, `#geo+lat`, `#geo+lon`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from services.shipments.formats import epcis
from shared.hxl import Column
from shared.read_directory import names

CONVOY = [
    Column("convoy_id", "Convoy", "#activity+code"),
    Column("reference", "Reference", "#activity+name"),
]
RECIPIENT = Column.organisation("recipient", "Recipient", "#org+impl", id_key="destination_id")
ORIGIN = Column.organisation("origin", "Origin", "#org+origin")
DONOR = Column.organisation("donor", "Donor", "#org+funder")
LINE = [
    Column("manifest_line_id", "Manifest line", "#meta+id+manifest_line"),
    Column("pledge_id", "Pledge", "#meta+id+pledge"),
    Column("line_id", "Pledge line", "#meta+id+line"),
    *DONOR,
    Column("item_code", "Item class", "#item+code"),
    Column("category", "Category", "#item+type"),
    Column("item", "Item", "#item+name"),
    Column("unit", "Unit", "#item+unit"),
]
FIGURES = [
    Column("lost", "Lost on the road", "#indicator+num+lost"),
    Column("received", "Received in good condition", "#indicator+num+received"),
    Column("damaged", "Damaged", "#indicator+num+damaged"),
    Column("short", "Short", "#indicator+num+short"),
]
STATUS = Column("status", "Status", "#status")
WEIGHT = Column("weight_kg", "Weight (kg)", "#indicator+num+weight")
DELIVERED_AT = Column("delivered_at", "Delivered", "#date+delivered")
# a loaded line and what became of it: deliveries and discrepancies end with it
ARRIVAL = [*LINE, Column("loaded", "Loaded quantity", "#indicator+num+loaded"), *FIGURES]

CONVOYS = [
    *CONVOY,
    STATUS,
    *ORIGIN,
    *RECIPIENT,
    *Column.organisation("carrier", "Carrier", "#org+carrier"),
    Column("donors", "Donor ids", "#org+funder+code"),
    Column("donor_names", "Donors", "#org+funder"),
    Column("planned_departure", "Planned departure", "#date+planned"),
    Column("dispatched_at", "Dispatched", "#date+dispatched"),
    Column("arrived_at", "Arrived", "#date+arrived"),
    DELIVERED_AT,
    WEIGHT,
    Column("place", "Last seen at", "#loc+name"),
    Column("lat", "Latitude", "#geo+lat"),
    Column("lon", "Longitude", "#geo+lon"),
    Column("last_news_at", "Last news", "#date+news"),
    Column("custody_id", "Custody holder id", "#org+custody+code"),
    Column("delivery_outcome", "Delivery", "#status+delivery"),
    Column("discrepancies", "Discrepant lines", "#indicator+num+discrepancies"),
]
MANIFEST = [
    *CONVOY,
    *RECIPIENT,
    *LINE,
    Column("vehicle", "Vehicle", "#meta+vehicle"),
    Column("state", "Line state", "#status"),
    Column("loaded_at", "Loaded", "#date+loaded"),
    Column("quantity", "Loaded quantity", "#indicator+num+loaded"),
    WEIGHT,
    Column("in_transit", "In transit", "#indicator+num+in_transit"),
    *FIGURES,
]
DELIVERIES = [
    *CONVOY,
    *ORIGIN,
    *RECIPIENT,
    DELIVERED_AT,
    Column("outcome", "Delivery", "#status+delivery"),
    Column("confirmed_by", "Confirmed by", "#contact+name"),
    Column("confirmed_role", "Role", "#contact+role"),
    *ARRIVAL,
]
DISCREPANCIES = [*CONVOY, STATUS, *ORIGIN, *RECIPIENT, *ARRIVAL]


def _orgs(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    keys = ("origin_id", "destination_id", "carrier_id", "donor_id", "custody_id")
    found = {str(r[k]) for r in rows for k in keys if r.get(k)}
    return found | {d for r in rows for d in r.get("donors", ())}


def _name(rows: list[dict[str, Any]], known: Mapping[str, str]) -> list[dict[str, Any]]:
    for row in rows:
        for key, name in (
            ("origin_id", "origin"),
            ("destination_id", "recipient"),
            ("carrier_id", "carrier"),
            ("donor_id", "donor"),
        ):
            if row.get(key):
                row[name] = known.get(row[key], row[key])
        if "donors" in row:
            row["donor_names"] = [known.get(d, d) for d in row["donors"]]
    return rows


async def named(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return _name(rows, await names(conn, _orgs(rows)))


def convoy_row(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A row of the convoys table from a convoy summary (queries.summary)."""
    position = summary.get("position") or {}
    coordinates = position.get("coordinates") or {}
    return {
        **summary,
        "place": position.get("place"),
        "lat": coordinates.get("lat"),
        "lon": coordinates.get("lon"),
        "last_news_at": (summary.get("last_news") or {}).get("occurred_at"),
        "custody_id": (summary.get("custody") or {}).get("organisation_id"),
    }


def _line(line: Mapping[str, Any]) -> dict[str, Any]:
    return {**line, "item_code": epcis.class_uri(line["pledge_id"], line["line_id"])}


def _of(document: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """What a line's row repeats of its convoy: the convoy and the parties named."""
    return {k: document[k] for k in ("convoy_id", "reference", *keys)}


def _figures(line: Mapping[str, Any]) -> dict[str, Any]:
    """A line's delivered figures as columns of their own (empty before a delivery)."""
    delivered = line.get("delivered") or {}
    return {k: delivered.get(k) for k in ("received", "damaged", "short")}


def manifest_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per manifest line of a convoy document already cut for the caller."""
    head = _of(document, "destination_id")
    return [{**head, **_line(line), **_figures(line)} for line in document["manifest"]]


def delivery_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per line a delivery confirmed, from a convoy document cut for the caller."""
    delivery = document.get("delivery")
    if not delivery:
        return []
    confirmed = delivery.get("confirmed_by") or {}
    head = {
        **_of(document, "origin_id", "destination_id"),
        "delivered_at": delivery["occurred_at"],
        "outcome": delivery["outcome"],
        "confirmed_by": confirmed.get("name"),
        "confirmed_role": confirmed.get("role"),
    }
    return [
        {**head, **_line(line), "loaded": line["quantity"], **_figures(line)}
        for line in document["manifest"]
        if line["state"] == "loaded"
    ]


def discrepancy_row(item: Mapping[str, Any]) -> dict[str, Any]:
    return _line(item)
