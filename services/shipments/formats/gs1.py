"""GS1 EPCIS 2.0 / CBV vocabulary and the identifiers the EPCIS export (epcis.py) and the HXL
tables (hxl.py) give convoys, organisations and pledge lines."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from services.shipments.domain import dec

CONTEXT_URL = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
NAMESPACE = "https://twinaid.example/epcis/"
IDS = "https://twinaid.example/id/"
CONTEXT: list[Any] = [CONTEXT_URL, {"twinaid": NAMESPACE}]
MEDIA_TYPE = "application/ld+json"

UOM = {"pieces": "H87", "boxes": "XBX", "kg": "KGM", "tonnes": "TNE", "litres": "LTR"}
INCIDENT_DISPOSITION = {
    "damage": "damaged",
    "theft": "stolen",
    "loss": "unknown",
    "seizure": "unavailable",
    "delay": "in_transit",
}
BORDER = {
    "waiting": ("inspecting", "in_transit"),
    "cleared": ("inspecting", "in_transit"),
    "held": ("holding", "in_transit"),
}
# bizTransaction types of our own (CBV has no pledge nor convoy)
PLEDGE = "twinaid:pledge"
CONVOY = "twinaid:convoy"


def ids(*parts: str) -> str:
    return IDS + "/".join(quote(p, safe="") for p in parts)


def organisation_uri(organisation_id: str) -> str:
    return ids("organisation", organisation_id)


def class_uri(pledge_id: str, line_id: str) -> str:
    """The class of the objects of one pledge line (no GTIN: see epcis.py's docstring)."""
    return ids("pledge-line", pledge_id, line_id)


def geo_uri(coordinates: Mapping[str, Any]) -> str:
    """RFC 5870."""
    return f"geo:{float(coordinates['lat'])},{float(coordinates['lon'])}"


def number(value: str | Decimal) -> int | float:
    d = dec(value)
    return int(d) if d == d.to_integral_value() else float(d)


def offset(t: datetime) -> str:
    delta = t.utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def ni(sha256_hex: str) -> str:
    """RFC 6920 named information URI of a SHA-256 digest."""
    raw = base64.urlsafe_b64encode(bytes.fromhex(sha256_hex)).decode().rstrip("=")
    return f"ni:///sha-256;{raw}"
