"""Replay throughput: read + verify + fold, and read-model rebuilds, over a generated history of
1,000,000 events across registry, pledges and shipments; the `eventsourcing` library's
PostgreSQL read rate measured in the same run as the comparison.

`python -m bench.replay [--events 1000000] [--pg embedded|system|URL] [--rebuild-events 0]
[--replay-events 4000]
[--es-events 200000] [--profile-events 30000]`; `--rebuild-only [--rebuild-events 50000]
[--services registry,shipments] [--repeat 2] [--profile]` measures the rebuilds (c) alone.

1. Generation: each service gets a fresh database (shared schema + its own) and a history shaped
   like its real one (the payloads of services/*/events.py, each event type's first occurrence
   validated by the service's pydantic model; IN_FLIGHT streams interleaved in commit order;
   signed chain checkpoints every 10,000 events, as the relay appends them). Rows are COPYed
   straight into `events`; positions and hashes are computed in Python as the sealer would
   and COPYed into `event_chain`, and `sealer_state` is set; one worker process per service,
   two at a time. That the hashes are right is not assumed: (a) verifies every one.
2. Measured in this one process, per service and in total (events/s, and client CPU seconds):
   rows      (b) read every event in position order (server-side cursor, pages of 5,000)
   decode    (b) + shared.rows.from_row into RecordedEvent (on as many events as eventsourcing
             reads back, for the comparison)
   verify    (a) shared.sealer.verify as `twinaid audit verify` runs it (each event's canonical
             body rendered from the stored RFC 8785 columns and SHA-256 hashed by PostgreSQL, the
             digests chained in this process while the server prepares the next page, anything
             that does not match canonicalised again with rfc8785;
             checkpoint signatures), with a fold per stream (version continuity, counts per
             type) over the same pages: the 100,000 events/s target
   deep      (a) canonicalising every event again with rfc8785 (chain_verifier.Verifier on from_row,
             as `verify(deep=True)` and the Kafka/feed replay do) and the same fold
   rebuild   (c) shared.projections.rebuild with the service's real projections over the whole
             generated history (or its first --rebuild-events events, in a database of their
             own); and services.audit.replay.replay of the first --replay-events events into a
             scratch database, as `twinaid audit replay` does
   When (a) misses the target: µs per event of each step (timed alone, no profiler) and a
   cProfile of (a) say where the time goes.
3. eventsourcing: --es-events events with the same payloads written through its
   PostgresApplicationRecorder (psycopg 3) into a fresh database, then read back with
   select_notifications in pages of 5,000, without and with its Mapper/JSONTranscoder.
Prints figures and writes bench/results/replay.json. Databases are dropped on exit, Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import hashlib
import json
import os
import pstats
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import rfc8785
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    Notification,
    StoredEvent,
    UUIDAsHex,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from bench.common import (
    MACHINE_NOTE,
    ROOT,
    CpuMeter,
    cancel_on_sigterm,
    connection,
    environment,
    header,
    met,
    pg_server,
    postmaster_pid,
    say,
    table,
    write_results,
)
from services.audit import replay as audit_replay
from services.pledges import events as pev
from services.registry import events as rev
from services.shipments import events as sev
from shared import chain, chain_verifier, privacy, sealer, signing
from shared import db as dbmod
from shared import projections as proj
from shared.contracts import version_of
from shared.events import Metadata, RecordedEvent
from shared.rows import COLUMNS, from_row
from shared.testing import fresh_database

TARGET = 100_000  # events/s, read + verify + fold, one core
SERVICES = ("registry", "pledges", "shipments")
SHARE = {"registry": 0.15, "pledges": 0.40, "shipments": 0.45}
SEED = 20240301
CHUNK = 20_000  # events per COPY transaction
PAGE = 5_000  # rows per cursor fetch, and eventsourcing's page size
ES_BATCH = 1_000  # events per insert_events call
ES_DEFAULT = 200_000  # its writes run at ~10,000 events/s here: 1M would take minutes
CHECKPOINT_EVERY = 10_000
IN_FLIGHT = 400  # streams being written at once: how far their events interleave
T0 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
SCHEMAS: dict[str, Mapping[str, Any]] = {
    "registry": rev.SCHEMAS,
    "pledges": pev.SCHEMAS,
    "shipments": sev.SCHEMAS,
}

PREVIOUS: dict[str, Mapping[tuple[str, int], Any]] = {
    "registry": rev.PREVIOUS,
    "pledges": pev.PREVIOUS,
    "shipments": sev.PREVIOUS,
}
# TWINAID_BENCH_CLEAR_PERSONS=1: people in clear (schema version 1), as before issue 20, to
# measure what sealing costs a replay in the same conditions
CLEAR_PERSONS = os.environ.get("TWINAID_BENCH_CLEAR_PERSONS", "") not in ("", "0")
# where the generated payloads name people, and which of their fields are personal: sealed as
# the services seal them (shared/privacy.py) in the event types of schema version 2
PERSONS: dict[str, tuple[str, ...]] = {
    "contacts": ("name", "email"),
    "contact": ("name", "email", "phone"),
    "drivers": ("name", "phone", "licence_number"),
    "person": ("name",),
    "confirmed_by": ("name",),
}


class Sealer:
    """Seals the people of a generated payload, one subject (and key) per name, as a
    service's privacy_subjects would (no database: the keys are not kept)."""

    def __init__(self, service: str, rng: random.Random) -> None:
        self.service = service
        self.rng = rng
        self.subjects: dict[str, tuple[str, bytes]] = {}

    def person(self, value: dict[str, Any], personal: tuple[str, ...]) -> dict[str, Any]:
        name = str(value.get("name"))
        if name not in self.subjects:
            sid = f"{self.service}-{self.rng.getrandbits(128):032x}"
            self.subjects[name] = (sid, self.rng.randbytes(32))
        sid, key = self.subjects[name]
        hidden = {k: v for k, v in value.items() if k in personal and v is not None}
        out = {k: v for k, v in value.items() if k not in personal}
        out.update(
            subject_id=sid, personal=sorted(hidden), sealed=privacy.encrypt(key, sid, hidden)
        )
        return out

    def payload(self, value: Any) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if k in PERSONS and isinstance(v, dict):
                    out[k] = self.person(v, PERSONS[k])
                elif k in PERSONS and isinstance(v, list):
                    out[k] = [self.person(p, PERSONS[k]) for p in v]
                else:
                    out[k] = self.payload(v)
            return out
        if isinstance(value, list):
            return [self.payload(v) for v in value]
        return value


# -- vocabulary -------------------------------------------------------------------------------

CITIES = [
    ("kharkiv", "Kharkiv", "UA", "Kharkiv Oblast", ["Charkiw", "Харків"], 49.9935, 36.2304),
    ("lille", "Lille", "FR", "Hauts-de-France", ["Rijsel", "Ville de Lille"], 50.6292, 3.0573),
    ("leeds", "Leeds", "GB", "West Yorkshire", ["Leeds City Council"], 53.8008, -1.5491),
    ("vinnytsia", "Vinnytsia", "UA", "Vinnytsia Oblast", ["Вінниця"], 49.2331, 28.4682),
    ("duesseldorf", "Düsseldorf", "DE", "Nordrhein-Westfalen", ["Duesseldorf"], 51.2277, 6.7735),
    ("chernivtsi", "Chernivtsi", "UA", "Chernivtsi Oblast", ["Czernowitz"], 48.2921, 25.9358),
    ("krakow", "Kraków", "PL", "Małopolska", ["Cracow", "Krakau"], 50.0647, 19.945),
    ("lviv", "Lviv", "UA", "Lviv Oblast", ["Lwów", "Lemberg", "Львів"], 49.8397, 24.0297),
    ("glasgow", "Glasgow", "GB", "Scotland", ["Glaschu"], 55.8642, -4.2518),
    ("odesa", "Odesa", "UA", "Odesa Oblast", ["Odessa", "Одеса"], 46.4825, 30.7233),
    ("bordeaux", "Bordeaux", "FR", "Nouvelle-Aquitaine", ["Bordèu"], 44.8378, -0.5792),
    ("mykolaiv", "Mykolaiv", "UA", "Mykolaiv Oblast", ["Nikolaev"], 46.975, 31.9946),
    ("vilnius", "Vilnius", "LT", "Vilnius County", ["Wilno"], 54.6872, 25.2797),
    ("zaporizhzhia", "Zaporizhzhia", "UA", "Zaporizhzhia Oblast", ["Запоріжжя"], 47.8388, 35.1396),
]
ORG_KINDS = ["municipality", "hospital", "ngo", "foundation", "association", "company", "region"]
KIND_LABEL = {
    "municipality": "City Council",
    "hospital": "Regional Hospital",
    "ngo": "Aid Network",
    "foundation": "Foundation",
    "association": "Twinning Association",
    "company": "Logistics",
    "region": "Regional Council",
}
PARTNERSHIP_KINDS = ["twinning", "sister_city", "cooperation_agreement", "friendship"]
FIELDS = ["humanitarian_aid", "health_and_rehabilitation", "reconstruction", "education"]
ITEMS = [
    ("generators", "Diesel generator 20 kVA", "pieces", "410"),
    ("medicines", "Insulin pens", "boxes", "0.6"),
    ("antibiotics", "Amoxicillin 500 mg", "boxes", "0.4"),
    ("medical_equipment", "Portable ultrasound", "pieces", "9.5"),
    ("food", "Canned food", "kg", "1"),
    ("water", "Drinking water", "litres", "1"),
    ("shelter", "Winter tents", "pieces", "38"),
    ("clothing", "Thermal blankets", "pieces", "1.2"),
    ("hygiene", "Hygiene kits", "boxes", "4.5"),
    ("fuel", "Diesel", "litres", "0.85"),
]
REASONS = ["donor update", "stock counted again", "typo in the first entry", "budget revised"]
PLACES = ["Calais", "Dover", "Brussels", "Aachen", "Dresden", "Wrocław", "Rzeszów", "Korczowa"]
CROSSINGS = [("Korczowa-Krakovets", "PL", "UA"), ("Medyka-Shehyni", "PL", "UA")]
CURRENCIES = ["EUR", "GBP", "PLN"]


def _coordinates(rng: random.Random, lat: float, lon: float) -> dict[str, float]:
    """Non-integral, four-decimal degrees (as a map click gives)."""
    out = {}
    for key, base in (("lat", lat), ("lon", lon)):
        value = round(base + rng.uniform(-0.2, 0.2), 4)
        out[key] = value if value != int(value) else value + 0.0001
    return out


def _dec(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


# -- lifecycles: the events of one stream, in order -------------------------------------------

Step = tuple[str, dict[str, Any], int]  # event type, data, seconds it occurred before recording


@dataclass
class World:
    rng: random.Random
    counter: int = 0
    orgs: list[str] = field(default_factory=list)
    # needs posted so far: (need id, "money" or "item", its currency or unit); pledge lines
    # cover only needs they are comparable with, as the pledges service requires
    needs: list[tuple[str, str, str]] = field(default_factory=list)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:07d}"

    def org(self) -> str:
        if self.orgs:
            return self.rng.choice(self.orgs)
        city = self.rng.choice(CITIES)
        return f"{city[0]}-{self.rng.choice(ORG_KINDS)}-{self.rng.randrange(400)}"

    def new_uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


def organisation(w: World, oid: str) -> Iterator[Step]:
    rng = w.rng
    slug, city, country, region, aliases, lat, lon = rng.choice(CITIES)
    kind = rng.choice(ORG_KINDS)
    name = f"{city} {KIND_LABEL[kind]} {oid[-4:]}"
    yield (
        rev.ORGANISATION_REGISTERED,
        {
            "organisation_id": oid,
            "name": name,
            "kind": kind,
            "country": country,
            "region": region,
            "aliases": [f"{a} {KIND_LABEL[kind]}" for a in aliases[: rng.randrange(3)]],
            "coordinates": _coordinates(rng, lat, lon),
            "parent_id": f"{slug}-municipality-1" if kind == "hospital" else None,
        },
        0,
    )
    w.orgs.append(oid)
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        pick = rng.random()
        if pick < 0.3:
            new = f"{name} ({rng.choice(('Ukraine support', 'Cooperation Office'))})"
            yield (
                rev.ORGANISATION_RENAMED,
                {"organisation_id": oid, "name": new, "previous_name": name, "reason": None},
                0,
            )
            name = new
        elif pick < 0.55:
            yield (
                rev.ORGANISATION_ALIAS_ADDED,
                {"organisation_id": oid, "alias": f"{slug.upper()}-{rng.randrange(100)}"},
                0,
            )
        elif pick < 0.85:
            contacts = [
                {"role": role, "name": person, "email": f"{person.split()[0].lower()}@{slug}.org"}
                for role, person in rng.sample(
                    [
                        ("coordinator", "Olena Kovalenko"),
                        ("logistics", "Marc Dubois"),
                        ("mayor's office", "Sarah Whitfield"),
                        ("hospital liaison", "Andriy Melnyk"),
                    ],
                    k=rng.randint(1, 3),
                )
            ]
            yield (
                rev.ORGANISATION_CONTACTS_CHANGED,
                {"organisation_id": oid, "contacts": contacts},
                0,
            )
        else:
            yield (
                rev.ORGANISATION_CORRECTED,
                {
                    "organisation_id": oid,
                    "changes": {"region": f"{region} (corrected)"},
                    "previous": {"region": region},
                    "reason": rng.choice(REASONS),
                },
                0,
            )


def partnership(w: World, pid: str) -> Iterator[Step]:
    rng = w.rng
    pair = [w.org(), w.org()]
    kind = rng.choice(PARTNERSHIP_KINDS)
    evidence = {
        "reference": f"https://example.org/council/minutes/{rng.randrange(10**6)}",
        "note": rng.choice((None, "council resolution")),
    }
    yield (
        rev.PARTNERSHIP_PROPOSED,
        {
            "partnership_id": pid,
            "organisations": pair,
            "kind": kind,
            "programme": rng.choice((None, "Bridges of Trust", "U-LEAD")),
            "phase": None,
            "fields": rng.sample(FIELDS, k=2),
            "proposed_by": pair[0],
            "evidence": evidence,
        },
        0,
    )
    before = "proposed"
    for to in ("under_discussion", "agreed", "signed", "suspended")[: rng.randint(1, 4)]:
        if to in ("agreed", "signed"):  # each organisation agrees with its own key first
            for org in pair:
                yield (
                    rev.PARTNERSHIP_AGREEMENT_RECORDED,
                    {
                        "partnership_id": pid,
                        "organisations": pair,
                        "kind": kind,
                        "organisation_id": org,
                        "from_status": before,
                        "to_status": to,
                        "evidence": evidence if to == "signed" else None,
                    },
                    0,
                )
        yield (
            rev.PARTNERSHIP_STATUS_CHANGED,
            {
                "partnership_id": pid,
                "organisations": pair,
                "kind": kind,
                "from_status": before,
                "to_status": to,
                "evidence": evidence if to == "signed" else None,
            },
            0,
        )
        before = to


def need(w: World, nid: str) -> Iterator[Step]:
    rng = w.rng
    category, item, unit, _ = rng.choice(ITEMS)
    money = rng.random() < 0.25
    quantity = str(rng.choice((50, 120, 400, 1000, 13000)))
    currency = rng.choice(CURRENCIES)
    w.needs.append((nid, "money", currency) if money else (nid, "item", unit))
    yield (
        pev.NEED_POSTED,
        {
            "need_id": nid,
            "recipient_id": w.org(),
            "kind": "money" if money else "item",
            "category": category,
            "description": f"{item} for the {rng.choice(('hospital', 'shelters', 'water works'))}",
            "quantity": None if money else quantity,
            "unit": None if money else unit,
            "amount": rng.randrange(10**5, 10**8) if money else None,
            "currency": currency if money else None,
            "priority": rng.choice(("critical", "high", "normal", "normal")),
            "serves": rng.sample(["hospitals", "displaced_people", "children"], k=2),
            "deadline": (T0.date() + timedelta(days=rng.randrange(30, 400))).isoformat(),
            "internal_note": rng.choice((None, "ask the oblast administration first")),
            "contact": {
                "name": "Iryna Bondar",
                "role": "procurement",
                "email": None,
                "phone": None,
            },
        },
        0,
    )
    if rng.random() < 0.3:
        yield (
            pev.NEED_REVISED,
            {
                "need_id": nid,
                "changes": {"priority": "critical"},
                "previous": {"priority": "high"},
                "reason": rng.choice(REASONS),
            },
            0,
        )
    end = rng.random()
    if end < 0.6:
        yield pev.NEED_CLOSED, {"need_id": nid, "reason": "covered by pledges"}, 0
    elif end < 0.7:
        yield pev.NEED_CANCELLED, {"need_id": nid, "reason": "no longer needed"}, 0


def pledge(w: World, pid: str) -> Iterator[Step]:
    rng = w.rng
    donor, recipient = w.org(), w.org()
    partnership_id = rng.choice((None, f"partnership-{rng.randrange(10**6):07d}"))
    lines: list[dict[str, Any]] = []
    for i in range(rng.randint(1, 3)):
        category, item, unit, kg = rng.choice(ITEMS)
        currency = rng.choice(CURRENCIES)
        money = rng.random() < 0.3
        need_id = None
        if w.needs and rng.random() < 0.5:  # covers a recent need, in its unit or currency
            need_id, kind, measure = rng.choice(w.needs[-500:])
            money = kind == "money"
            if money:
                currency = measure
            else:
                category, item, unit, kg = rng.choice([x for x in ITEMS if x[2] == measure])
        if money:
            amount = rng.randrange(10**4, 10**7)
            lines.append(
                {
                    "line_id": f"L{i + 1}",
                    "kind": "money",
                    "need_id": need_id,
                    "item": f"{item} (purchase)",
                    "category": category,
                    "quantity": None,
                    "unit": None,
                    "weight_kg": None,
                    "value_amount": None,
                    "value_currency": None,
                    "amount": amount,
                    "currency": currency,
                }
            )
        else:
            qty = rng.choice((10, 40, 250, 1200))
            lines.append(
                {
                    "line_id": f"L{i + 1}",
                    "kind": "in_kind",
                    "need_id": need_id,
                    "item": item,
                    "category": category,
                    "quantity": str(qty),
                    "unit": unit,
                    "weight_kg": _dec(qty * float(kg)),
                    "value_amount": rng.randrange(10**4, 10**7),
                    "value_currency": "EUR",
                    "amount": None,
                    "currency": None,
                }
            )
    yield (
        pev.PLEDGE_MADE,
        {
            "pledge_id": pid,
            "donor_id": donor,
            "recipient_id": recipient,
            "partnership_id": partnership_id,
            "description": rng.choice((None, "Winter appeal, second convoy")),
            "lines": lines,
            "internal_note": None,
            "contact": {"name": "Tom Ellison", "role": "donor desk", "email": None, "phone": None},
        },
        0,
    )
    if rng.random() < 0.07:
        yield (
            pev.PLEDGE_WITHDRAWN,
            {"pledge_id": pid, "reason": "funding fell through", "previous_status": "pledged"},
            0,
        )
        return
    yield pev.PLEDGE_COMMITTED, {"pledge_id": pid, "donor_id": donor, "recipient_id": recipient}, 0

    def updated(line: dict[str, Any], delivered: float, status: str) -> Step:
        qty = float(line["quantity"])
        return (
            pev.PLEDGE_LINE_UPDATED,
            {
                "pledge_id": pid,
                "line_id": line["line_id"],
                "donor_id": donor,
                "recipient_id": recipient,
                "partnership_id": partnership_id,
                "item": line["item"],
                "category": line["category"],
                "unit": line["unit"],
                "quantity": line["quantity"],
                "weight_kg": line["weight_kg"],
                "delivered": _dec(delivered),
                "remaining": _dec(max(0.0, qty - delivered)),
                "status": status,
            },
            0,
        )

    for line in lines:
        if line["kind"] == "money":
            paid = 0
            for part in (0.5, 0.5)[: rng.randint(1, 2)]:
                amount = int(line["amount"] * part)
                paid += amount
                yield (
                    pev.MONEY_RECEIVED,
                    {
                        "pledge_id": pid,
                        "line_id": line["line_id"],
                        "amount": amount,
                        "currency": line["currency"],
                        "received_on": "2024-05-02",
                        "reference": f"SEPA-{rng.randrange(10**9)}",
                        "received_total": paid,
                        "outstanding": max(0, line["amount"] - paid),
                        "pledge_status": "partly_fulfilled",
                    },
                    0,
                )
            continue
        yield updated(line, 0.0, "committed")
        amount_in = float(line["quantity"])
        delivered = 0.0
        for share in (0.5, 0.5)[: rng.randint(1, 2)]:
            received = amount_in * share
            delivered += received
            yield (
                pev.DELIVERY_RECORDED,
                {
                    "pledge_id": pid,
                    "line_id": line["line_id"],
                    "convoy_id": f"convoy-{rng.randrange(10**6):07d}",
                    "manifest_line_id": f"M{rng.randrange(1, 9)}",
                    "delivery_event_id": str(w.new_uuid()),
                    "recipient_id": recipient,
                    "unit": line["unit"],
                    "loaded": _dec(received),
                    "received": _dec(received),
                    "damaged": "0",
                    "short": "0",
                    "lost": "0",
                    "confirmed_by": {"name": "Oksana Hrytsenko", "role": "warehouse"},
                    "document": {"name": "waybill.pdf", "sha256": f"{rng.getrandbits(256):064x}"},
                    "delivered_total": _dec(delivered),
                    "pledge_status": "fulfilled" if delivered >= amount_in else "partly_fulfilled",
                },
                rng.randrange(600),
            )
            yield updated(line, delivered, "fulfilled" if delivered >= amount_in else "committed")
        if rng.random() < 0.25:
            yield (
                pev.DONOR_FIGURE_REPORTED,
                {
                    "pledge_id": pid,
                    "line_id": line["line_id"],
                    "kind": "in_kind",
                    "quantity": line["quantity"],
                    "unit": line["unit"],
                    "amount": None,
                    "currency": None,
                    "reported_on": "2024-06-10",
                    "note": "as loaded in Leeds",
                },
                0,
            )


def convoy(w: World, cid: str) -> Iterator[Step]:
    rng = w.rng
    origin, destination, carrier = w.org(), w.org(), w.org()
    vehicles = [
        {
            "registration": f"YK{rng.randrange(10, 99)} {rng.randrange(100, 999)}",
            "type": t,
            "capacity_kg": c,
        }
        for t, c in rng.sample(
            [("7.5 t box van", "3500"), ("articulated lorry", "24000"), ("van", "1200")], k=2
        )
    ]
    yield (
        sev.CONVOY_PLANNED,
        {
            "convoy_id": cid,
            "reference": f"Convoy {rng.choice(('Leeds', 'Lille', 'Kraków'))} #{cid[-5:]}",
            "origin_id": origin,
            "destination_id": destination,
            "carrier_id": carrier,
            "planned_departure": (T0 + timedelta(days=rng.randrange(400))).isoformat(),
            "vehicles": vehicles,
            "drivers": [
                {
                    "name": "Mykola Shevchuk",
                    "phone": "+380 67 000 0000",
                    "licence_number": None,
                    "vehicle": vehicles[0]["registration"],
                }
            ],
            "route": rng.sample(PLACES, k=4),
            "note": None,
        },
        0,
    )
    lines: list[dict[str, Any]] = []
    for i in range(rng.randint(2, 6)):
        _, item, unit, kg = rng.choice(ITEMS)
        qty = rng.choice((10, 40, 120))
        line = {
            "convoy_id": cid,
            "manifest_line_id": f"M{i + 1}",
            "pledge_id": f"pledge-{rng.randrange(10**6):07d}",
            "line_id": "L1",
            "donor_id": w.org(),
            "recipient_id": destination,
            "item": item,
            "category": None,
            "unit": unit,
            "quantity": str(qty),
            "weight_kg": _dec(qty * float(kg)),
            "vehicle": vehicles[i % 2]["registration"],
            "correlation_id": str(w.new_uuid()),
        }
        lines.append(line)
        yield sev.MANIFEST_LINE_LOADED, line, 0
    if rng.random() < 0.05:
        yield (
            sev.CONVOY_CANCELLED,
            {
                "convoy_id": cid,
                "reason": "border closed for lorries",
                "released": [
                    {k: x[k] for k in ("manifest_line_id", "pledge_id", "line_id", "quantity")}
                    for x in lines
                ],
            },
            0,
        )
        return

    def entry(**data: Any) -> dict[str, Any]:
        return {
            "convoy_id": cid,
            "entry_id": str(w.new_uuid()),
            "entry_sha256": f"{rng.getrandbits(256):064x}",
            "note": None,
            **data,
        }

    custody = {
        "organisation_id": carrier,
        "name": None,
        "person": {"name": "Mykola Shevchuk", "role": "driver"},
    }
    total = sum(float(x["weight_kg"]) for x in lines)
    yield (
        sev.CONVOY_DISPATCHED,
        entry(manifest_lines=len(lines), weight_kg=_dec(total), custody=custody),
        rng.randrange(300),
    )
    slug, _, _, _, _, lat, lon = rng.choice(CITIES)
    for place in rng.sample(PLACES, k=rng.randint(2, 5)):
        yield (
            sev.CHECKPOINT_RECORDED,
            entry(place=place, coordinates=_coordinates(rng, lat, lon)),
            rng.randrange(3600),
        )
    point, a, b = rng.choice(CROSSINGS)
    for outcome in ("waiting", "cleared"):
        yield (
            sev.BORDER_CROSSED,
            entry(
                crossing_point=point,
                from_country=a,
                to_country=b,
                customs_document=f"T1-{rng.randrange(10**8)}",
                outcome=outcome,
                coordinates=None,
            ),
            rng.randrange(3600),
        )
    if rng.random() < 0.5:
        to = {"organisation_id": destination, "name": None, "person": None}
        yield sev.CUSTODY_HANDED_OFF, entry(from_party=custody, to_party=to), rng.randrange(900)
    if rng.random() < 0.2:
        yield (
            sev.INCIDENT_REPORTED,
            entry(
                kind="delay",
                description="queue at the border",
                place=point,
                delay_minutes=240,
                lines=[],
            ),
            rng.randrange(900),
        )
    yield sev.CONVOY_ARRIVED, entry(place=f"{slug.title()} central warehouse"), rng.randrange(900)
    yield (
        sev.DELIVERY_CONFIRMED,
        {
            "convoy_id": cid,
            "recipient_id": destination,
            "origin_id": origin,
            "carrier_id": carrier,
            "confirmed_by": {"name": "Oksana Hrytsenko", "role": "warehouse"},
            "document": {"name": "acceptance-act.pdf", "sha256": f"{rng.getrandbits(256):064x}"},
            "lines": [
                {
                    "manifest_line_id": x["manifest_line_id"],
                    "pledge_id": x["pledge_id"],
                    "line_id": x["line_id"],
                    "item": x["item"],
                    "unit": x["unit"],
                    "loaded": x["quantity"],
                    "received": x["quantity"],
                    "damaged": "0",
                    "short": "0",
                    "lost": "0",
                    "correlation_id": x["correlation_id"],
                }
                for x in lines
            ],
        },
        0,
    )
    yield sev.CONVOY_CLOSED, {"convoy_id": cid, "outcome": "delivered", "note": None}, 0


Lifecycle = Callable[[World, str], Iterator[Step]]
KINDS: dict[str, list[tuple[float, str, Lifecycle]]] = {
    "registry": [
        (0.6, rev.STREAM_ORGANISATION, organisation),
        (1.0, rev.STREAM_PARTNERSHIP, partnership),
    ],
    "pledges": [(0.4, pev.STREAM_NEED, need), (1.0, pev.STREAM_PLEDGE, pledge)],
    "shipments": [(1.0, sev.STREAM_CONVOY, convoy)],
}


@dataclass(slots=True)
class Stream:
    stream_type: str
    stream_id: str
    steps: Iterator[Step]
    actor: str
    organisation: str
    correlation_id: str
    version: int = 0
    last_event: str | None = None


@dataclass(slots=True)
class Draft:
    """One event to store, before its position and hash."""

    event_id: uuid.UUID
    stream_type: str
    stream_id: str
    stream_version: int
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]
    metadata: dict[str, str | None]
    schema_version: int = 1


def drafts(service: str, seed: int, in_flight: int = IN_FLIGHT) -> Iterator[Draft]:
    """A service's history in commit order, endless: `in_flight` streams at a time, each
    advanced a step at random, so events of many streams interleave as concurrent requests do."""
    rng = random.Random(f"{seed}-{service}")
    w = World(rng)
    keys: dict[str, str] = {}
    active: list[Stream] = []
    clock = 0  # µs since T0
    validated: set[str] = set()
    sealer = Sealer(service, rng)

    def start() -> Stream:
        pick = rng.random()
        stream_type, lifecycle = next((t, f) for p, t, f in KINDS[service] if pick < p)
        sid = w.next_id(stream_type)
        org = w.org()
        actor = keys.setdefault(org, f"{rng.getrandbits(64):016x}")
        return Stream(stream_type, sid, lifecycle(w, sid), actor, org, str(w.new_uuid()))

    while True:
        if len(active) < in_flight:
            active.append(start())
        i = rng.randrange(len(active))
        s = active[i]
        step = next(s.steps, None)
        if step is None:
            active[i] = active[-1]
            active.pop()
            continue
        event_type, data, lag = step
        model = SCHEMAS[service][event_type]
        version = version_of(model)
        if CLEAR_PERSONS and version > 1:  # the history as written before people were sealed
            model, version = PREVIOUS[service][event_type, 1], 1
        if version > 1:  # people sealed, as the service writes them
            if event_type not in validated:
                PREVIOUS[service][event_type, 1].model_validate(data)
            data = sealer.payload(data)
            # the current version holds what its model holds (a newer version may drop fields)
            data = {k: v for k, v in data.items() if k in model.model_fields}
        if event_type not in validated:  # realistic payloads: the service's own model accepts it
            model.model_validate(data)
            validated.add(event_type)
        clock += rng.randrange(1, 40_000_000)
        recorded = T0 + timedelta(microseconds=clock)
        event_id = w.new_uuid()
        s.version += 1
        yield Draft(
            event_id=event_id,
            stream_type=s.stream_type,
            stream_id=s.stream_id,
            stream_version=s.version,
            event_type=event_type,
            occurred_at=recorded - timedelta(seconds=lag) if lag else recorded,
            recorded_at=recorded,
            data=data,
            schema_version=version,
            metadata={
                "actor": s.actor,
                "organisation": s.organisation,
                "correlation_id": s.correlation_id,
                "causation_id": s.last_event,
                "idempotency_key": str(w.new_uuid()) if rng.random() < 0.5 else None,
            },
        )
        s.last_event = str(event_id)


def _instant(value: datetime) -> str:
    """chain._instant without strftime: identical for years 1000-9999 (checked on the first
    events of each service against chain.link)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


_encode = chain.encode  # what the writers store (shared/event_store.py)


# -- writing the history ------------------------------------------------------------------------


@dataclass
class Generated:
    service: str
    events: int
    streams: int
    checkpoints: int
    seconds: float
    head: bytes


EVENT_COLUMNS = [
    "event_id",
    "stream_type",
    "stream_id",
    "stream_version",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "data",
    "metadata",
]


async def generate(
    url: str,
    service: str,
    n: int,
    signer: signing.Signer,
    *,
    cross_check: int = 300,
    seed: int = SEED,
    in_flight: int = IN_FLIGHT,
) -> Generated:
    """COPY `n` events (signed checkpoints included) and their chain, as the sealer would
    (the history of `drafts`: also what tests project from generated sequences)."""
    started = time.perf_counter()
    source = drafts(service, seed, in_flight)
    position, head = 0, chain.GENESIS
    checkpoint_version = 0
    streams: set[str] = set()
    hashes: dict[int, bytes] = {}
    pending: asyncio.Task[None] | None = None
    async with connection(url) as conn:
        while position < n:
            events: list[tuple[Any, ...]] = []
            links: list[tuple[int, uuid.UUID, bytes]] = []
            checks: list[tuple[RecordedEvent, int, bytes]] = []
            while position < n and len(events) < CHUNK:
                position += 1
                if position % CHECKPOINT_EVERY == 0:
                    checkpoint_version += 1
                    recorded = T0 + timedelta(seconds=position)
                    d = Draft(
                        event_id=uuid.uuid4(),
                        stream_type=signing.STREAM_TYPE,
                        stream_id=f"checkpoint-{service}",
                        stream_version=checkpoint_version,
                        event_type=signing.CHECKPOINT,
                        occurred_at=recorded,
                        recorded_at=recorded,
                        data=signer.checkpoint(
                            service=service, position=position - 1, head=head, at=recorded
                        ),
                        metadata=Metadata(actor=f"{service}-relay").as_dict(),
                    )
                else:
                    d = next(source)
                streams.add(d.stream_id)
                if pending is not None and position % 500 == 0:
                    await asyncio.sleep(0)  # let the COPY under way move on
                # the canonical body assembled around data and metadata encoded once (keys
                # in RFC 8785 order); the same texts are what `events` stores
                data, meta = _encode(d.data), _encode(d.metadata)
                body = (
                    f'{{"data":{data},"event_id":"{d.event_id}","event_type":'
                    f'{_encode(d.event_type)},"metadata":{meta},"occurred_at":'
                    f'"{_instant(d.occurred_at)}","position":{position},"recorded_at":'
                    f'"{_instant(d.recorded_at)}","schema_version":{d.schema_version},"stream_id":'
                    f'{_encode(d.stream_id)},"stream_type":{_encode(d.stream_type)},'
                    f'"stream_version":{d.stream_version}}}'
                ).encode()
                head = hashlib.sha256(head + hashlib.sha256(body).digest()).digest()
                events.append(
                    (
                        d.event_id,
                        d.stream_type,
                        d.stream_id,
                        d.stream_version,
                        d.event_type,
                        d.schema_version,
                        d.occurred_at,
                        d.recorded_at,
                        data,
                        meta,
                    )
                )
                links.append((position, d.event_id, head))
                if position <= cross_check:
                    hashes[position] = head
                    checks.append((_recorded(d), position, head))
            # the chain module itself must agree on the first events (the full check is (a))
            for event, at, expected in checks:
                previous = hashes.get(at - 1, chain.GENESIS)
                if chain.link(previous, event, position=at) != expected:
                    raise AssertionError(f"{service}: generated hash differs at {at}")
            if pending is not None:
                await pending
            # PostgreSQL stores this chunk while the next one is made
            pending = asyncio.create_task(_copy(conn, events, links))
            await asyncio.sleep(0)
        if pending is not None:
            await pending
        last = await conn.fetchrow(
            "SELECT tx_id, id FROM events ORDER BY tx_id DESC, id DESC LIMIT 1"
        )
        await conn.execute(
            "UPDATE sealer_state SET last_tx = $1, last_id = $2, position = $3, hash = $4",
            last["tx_id"],
            last["id"],
            position,
            head,
        )
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE event_chain")
    return Generated(
        service,
        n,
        len(streams),
        n // CHECKPOINT_EVERY,
        time.perf_counter() - started,
        head,
    )


async def _copy(
    conn: asyncpg.Connection,
    events: Sequence[tuple[Any, ...]],
    links: Sequence[tuple[int, uuid.UUID, bytes]],
) -> None:
    async with conn.transaction():
        await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
        await conn.copy_records_to_table(
            "event_chain", records=links, columns=["position", "event_id", "hash"]
        )


def _recorded(d: Draft) -> RecordedEvent:
    return RecordedEvent(
        event_id=d.event_id,
        stream_type=d.stream_type,
        stream_id=d.stream_id,
        stream_version=d.stream_version,
        event_type=d.event_type,
        schema_version=d.schema_version,
        occurred_at=d.occurred_at,
        recorded_at=d.recorded_at,
        data=d.data,
        metadata=Metadata.from_dict(d.metadata),
    )


# -- reading it back ----------------------------------------------------------------------------

READ_SQL = f"""
SELECT c.position, c.event_id AS sealed_id, c.hash AS sealed_hash, {COLUMNS}
FROM event_chain c LEFT JOIN events e ON e.event_id = c.event_id
ORDER BY c.position
"""


async def pages(conn: asyncpg.Connection, limit: int | None = None) -> AsyncIterator[list[Any]]:
    """Every chained row in position order, a page at a time, in one snapshot."""
    sql = READ_SQL + (f" LIMIT {int(limit)}" if limit is not None else "")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(sql)
        while page := await cursor.fetch(PAGE):
            yield page


@dataclass
class Scan:
    events: int = 0
    intact: bool | None = None
    head: str = ""
    problem: str | None = None
    streams: int = 0
    version_gaps: int = 0
    checkpoints: int = 0
    slow_path: int = 0


async def scan_rows(conn: asyncpg.Connection, limit: int | None = None) -> Scan:
    out = Scan()
    async for page in pages(conn, limit):
        out.events += len(page)
    return out


async def scan_decode(conn: asyncpg.Connection, limit: int | None = None) -> Scan:
    out = Scan()
    async for page in pages(conn, limit):
        for row in page:
            from_row(row, position=row["position"], hash=row["sealed_hash"])
        out.events += len(page)
    return out


class Fold:
    """Per stream: version continuity; per event type: counts."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.gaps = 0

    def page(self, rows: Sequence[Any]) -> None:
        versions, counts = self.versions, self.counts
        gaps = 0
        for row in rows:
            sid, version, event_type = row[3], row[4], row[5]
            if version != versions.get(sid, 0) + 1:
                gaps += 1
            versions[sid] = version
            counts[event_type] = counts.get(event_type, 0) + 1
        self.gaps += gaps


async def scan_verify(conn: asyncpg.Connection, limit: int | None = None) -> Scan:
    """(a): shared.sealer.verify (rendered bodies), folding each verified page."""
    if limit is not None:
        raise ValueError("verify walks the whole log")
    fold = Fold()
    verdict = await sealer.verify(conn, observe=fold.page)
    return Scan(
        events=verdict.checked,
        intact=verdict.intact,
        head=verdict.head_hash.hex(),
        problem=verdict.problem,
        streams=len(fold.versions),
        version_gaps=fold.gaps,
        checkpoints=verdict.checkpoints_checked,
        slow_path=verdict.recanonicalised,
    )


async def scan_deep(
    conn: asyncpg.Connection, limit: int | None = None, *, sealed_head: int | None = None
) -> Scan:
    """(a) canonicalising every event again: read, from_row, chain_verifier.Verifier, the same
    fold."""
    out = Scan()
    verifier = chain_verifier.Verifier()
    versions: dict[str, int] = {}
    counts: dict[str, int] = {}
    gaps = 0
    add = verifier.add
    Entry = chain.ChainEntry
    async for page in pages(conn, limit):
        for row in page:
            event = from_row(row) if row["event_id"] is not None else None
            if add(Entry(row["position"], str(row["sealed_id"]), row["sealed_hash"], event)):
                break
            assert event is not None
            sid = event.stream_id
            if event.stream_version != versions.get(sid, 0) + 1:
                gaps += 1
            versions[sid] = event.stream_version
            counts[event.event_type] = counts.get(event.event_type, 0) + 1
        out.events += len(page)
        if verifier.failure is not None:
            break
    verdict = verifier.finish(sealed_head=sealed_head)
    out.intact, out.head, out.problem = verdict.intact, verdict.head_hash.hex(), verdict.problem
    out.streams, out.version_gaps, out.checkpoints = (
        len(versions),
        gaps,
        verdict.checkpoints_checked,
    )
    out.slow_path = verdict.recanonicalised
    return out


SCANS: dict[str, Callable[..., Any]] = {
    "rows": scan_rows,
    "decode": scan_decode,
    "verify": scan_verify,
    "deep": scan_deep,
}
LABELS = {
    "rows": "read rows",
    "decode": "read + from_row",
    "verify": "(a) read + verify + fold",
    "deep": "(a) canonicalising every event",
    "rebuild": "(c) rebuild (projections.rebuild)",
    "replay": "(c) audit replay into scratch",
}


@dataclass
class Timing:
    events: int
    seconds: float
    cpu_seconds: float
    cores: dict[str, float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate),
            "client_cpu_seconds": round(self.cpu_seconds, 3),
            "events_per_client_cpu_second": round(self.events / self.cpu_seconds)
            if self.cpu_seconds
            else None,
            "cores": self.cores,
        }


class Clock:
    """Wall and CPU time of one measured step, and the cores each process used meanwhile."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter = meter
        self.n = 0

    @contextlib.contextmanager
    def measure(self, out: dict[str, float]) -> Iterator[None]:
        self.n += 1
        start, end = f"s{self.n}", f"e{self.n}"
        gc.collect()
        self.meter.mark(start)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            out["seconds"] = time.perf_counter() - wall
            out["cpu"] = time.process_time() - cpu
            self.meter.mark(end)
            out.update({f"cores_{k}": v for k, v in self.meter.cores(start, end).items()})


def _timing(events: int, m: dict[str, float]) -> Timing:
    cores = {k[6:]: v for k, v in m.items() if k.startswith("cores_")}
    return Timing(events, m["seconds"], m["cpu"], cores)


async def measure_scan(
    clock: Clock, url: str, kind: str, *, sealed_head: int | None = None, limit: int | None = None
) -> tuple[Timing, Scan]:
    m: dict[str, float] = {}
    async with connection(url) as conn:
        kwargs = {"sealed_head": sealed_head} if kind == "deep" else {}
        with clock.measure(m):
            result: Scan = await SCANS[kind](conn, limit, **kwargs)
    return _timing(result.events, m), result


# -- generation in worker processes -------------------------------------------------------------


async def generate_all(jobs: Sequence[tuple[str, str, int]]) -> dict[str, Generated]:
    """One worker process per service (`--worker`), two at a time: the machine has two cores.
    Each service signs its checkpoints with a key of its own, as deployed."""
    slots = asyncio.Semaphore(2)

    async def one(service: str, url: str, n: int) -> Generated:
        async with slots:
            spec = json.dumps({"service": service, "url": url, "events": n})
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.replay",
                "--worker",
                spec,
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
            )
            try:
                out, _ = await proc.communicate()
            finally:
                if proc.returncode is None:
                    proc.terminate()
                    with contextlib.suppress(ProcessLookupError):
                        await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode != 0:
                raise RuntimeError(f"generating {service} failed (exit code {proc.returncode})")
            raw = json.loads(out.decode().strip().splitlines()[-1])
            return Generated(**{**raw, "head": bytes.fromhex(raw["head"])})

    async with asyncio.TaskGroup() as group:
        tasks = {service: group.create_task(one(service, url, n)) for service, url, n in jobs}
    return {service: task.result() for service, task in tasks.items()}


async def worker(spec: Mapping[str, Any]) -> None:
    g = await generate(spec["url"], spec["service"], spec["events"], signing.Signer.generate())
    print(json.dumps({**g.__dict__, "head": g.head.hex()}), flush=True)


# -- (c) read-model rebuilds ------------------------------------------------------------------


async def measure_rebuild(
    clock: Clock, server: str, url: str, service: str, events: int, replay_events: int
) -> dict[str, Any]:
    """projections.rebuild over the whole log of `url`, then audit replay of its first
    `replay_events` events into a scratch database."""
    projections = audit_replay.projections_of(service)
    out: dict[str, Any] = {"events": events}
    m: dict[str, float] = {}
    async with connection(url) as conn:
        with clock.measure(m):
            replayed = await proj.rebuild(conn, projections)
        out["rebuild"] = _timing(replayed, m).as_dict()
        out["rows"] = {
            t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"'))
            for p in projections
            for t in p.tables
        }

    async def source() -> AsyncIterator[RecordedEvent]:
        async with connection(url) as reader:
            async for page in pages(reader, replay_events):
                for row in page:
                    yield from_row(row, position=row["position"], hash=bytes(row["sealed_hash"]))

    m = {}
    scratch = None
    try:
        with clock.measure(m):
            report, scratch = await audit_replay.replay(
                service, source(), scratch_server=server, progress=lambda _: None
            )
        out["replay"] = _timing(report.events, m).as_dict()
        out["replay"]["intact"] = report.verdict.intact if report.verdict else None
    except Exception as exc:  # a finding to report, not a reason to stop the benchmark
        out["replay"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        if scratch is not None:
            await audit_replay.drop(server, scratch)
        else:
            await _drop_scratch(server, service)
    return out


async def digest(
    conn: asyncpg.Connection, projections: Sequence[proj.Projection]
) -> dict[str, str]:
    """A hash of each read-model table's rows (as text, sorted): two rebuilds of the same log
    that leave the same rows have the same digests."""
    out = {}
    for p in projections:
        for t in p.tables:
            text = await conn.fetchval(
                f"SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') FROM \"{t}\" r"
            )
            out[t] = hashlib.sha256(text.encode()).hexdigest()[:12]
    return out


async def rebuild_only(clock: Clock, server: str, args: argparse.Namespace) -> dict[str, Any]:
    """--rebuild-only: each service's first --rebuild-events events generated into a database
    of their own, then shared.projections.rebuild with its real projections, --repeat times
    (the rows' digest must be the same each time; with --profile, a cProfile of the last)."""
    n = args.rebuild_events or 50_000
    out: dict[str, Any] = {}
    async with AsyncExitStack() as cleanup:
        for service in args.services:
            url = await cleanup.enter_async_context(
                fresh_database(server, audit_replay.schema_of(service))
            )
            g = (await generate_all([(service, url, n)]))[service]
            say(f"  {service}: {g.events:,} events in {g.streams:,} streams generated")
            projections = audit_replay.projections_of(service)
            runs, digests = [], set()
            tables: dict[str, str] = {}
            async with connection(url) as conn:
                for i in range(args.repeat):
                    m: dict[str, float] = {}
                    profiler = cProfile.Profile() if args.profile and i == args.repeat - 1 else None
                    with clock.measure(m):
                        if profiler is not None:
                            profiler.enable()
                        replayed = await proj.rebuild(conn, projections)
                        if profiler is not None:
                            profiler.disable()
                    t = _timing(replayed, m)
                    runs.append(t.as_dict())
                    tables = await digest(conn, projections)
                    digests.add(json.dumps(tables, sort_keys=True))
                    say(
                        f"  {service:<9} rebuild {t.rate:>8,.0f} events/s,"
                        f" {t.cpu_seconds / replayed * 1e6:,.0f} client CPU µs/event"
                        f" (cores: {t.cores})"
                    )
                    if profiler is not None:
                        stats = pstats.Stats(profiler, stream=sys.stderr)
                        stats.sort_stats("tottime").print_stats(25)
                rows = {
                    t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"'))
                    for p in projections
                    for t in p.tables
                }
            best = max(runs, key=lambda r: r["events_per_second"])
            out[service] = {
                "events": n,
                "streams": g.streams,
                "runs": runs,
                "best": best,
                "us_client_cpu_per_event": round(best["client_cpu_seconds"] / n * 1e6, 1),
                "rows": rows,
                "rows_digest": tables,
            }
            if len(digests) != 1:
                say(f"  !! {service}: the rebuilds left different rows: {sorted(digests)}")
            say(f"  {service:<9} rows {rows}")
            say(f"  {service:<9} digests {tables}")
    return out


async def _drop_scratch(server: str, service: str) -> None:
    """A replay that failed before returning leaves its scratch database behind: drop it."""
    async with connection(dbmod.with_database(server, "postgres")) as admin:
        names = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"twinaid_audit_{service}_%"
        )
        for row in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')


# -- where the time goes ------------------------------------------------------------------------


def _per_event(n: int, fn: Callable[[], object]) -> float:
    gc.collect()
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) / n * 1e6


async def breakdown(urls: Mapping[str, str], per_service: int) -> dict[str, float]:
    """µs per event of each step of (a), timed one at a time on rows held in memory."""
    rows: list[Any] = []
    for url in urls.values():
        async with connection(url) as conn:
            rows += await conn.fetch(READ_SQL + f" LIMIT {int(per_service)}")
    n = len(rows)
    events = [from_row(r) for r in rows]
    bodies: list[dict[str, Any]] = []
    for r, e in zip(rows, events, strict=True):
        bodies.append(
            {
                "position": r["position"],
                "event_id": str(e.event_id),
                "stream_type": e.stream_type,
                "stream_id": e.stream_id,
                "stream_version": e.stream_version,
                "event_type": e.event_type,
                "schema_version": e.schema_version,
                "occurred_at": chain._instant(e.occurred_at),
                "recorded_at": chain._instant(e.recorded_at),
                "data": e.data,
                "metadata": e.metadata.as_dict(),
            }
        )
    canon = [rfc8785.dumps(b) for b in bodies]
    digests = [hashlib.sha256(c).digest() for c in canon]
    positions = [r["position"] for r in rows]
    sha = hashlib.sha256
    step = {
        "events_sampled": n,
        "from_row (json.loads of data + metadata, RecordedEvent)": _per_event(
            n, lambda: [from_row(r) for r in rows]
        ),
        "json.loads of data + metadata alone": _per_event(
            n, lambda: [(json.loads(r["data"]), json.loads(r["metadata"])) for r in rows]
        ),
        "canonical body dict (chain.canonical minus rfc8785, incl. 2 x strftime)": _per_event(
            n,
            lambda: [chain._instant(e.occurred_at) + chain._instant(e.recorded_at) for e in events],
        ),
        "rfc8785.dumps (pure Python)": _per_event(n, lambda: [rfc8785.dumps(b) for b in bodies]),
        "chain.canonical (total)": _per_event(
            n,
            lambda: [
                chain.canonical(e, position=p) for e, p in zip(events, positions, strict=True)
            ],
        ),
        "sha256 x 2 (content, then link)": _per_event(
            n, lambda: [sha(chain.GENESIS + sha(c).digest()).digest() for c in canon]
        ),
        "chain.link (total)": _per_event(
            n,
            lambda: [
                chain.link(chain.GENESIS, e, position=p)
                for e, p in zip(events, positions, strict=True)
            ],
        ),
    }
    del digests
    return {k: round(v, 3) for k, v in step.items()}


RFC8785 = "RFC 8785 canonicalisation (rfc8785, pure Python)"
OTHER = "other (event loop, asyncio)"


def _part(filename: str, name: str) -> str:
    f = filename.replace("\\", "/")
    if "rfc8785" in f:
        return RFC8785
    if "sha256" in name or "digest" in name:
        return "SHA-256 (hashlib)"
    if f.endswith("shared/sealer.py"):
        return "shared/sealer.py (the rendered walk)"
    if f.endswith("shared/chain.py"):
        return "shared/chain.py (canonical body)"
    if f.endswith("shared/chain_verifier.py"):
        return "shared/chain_verifier.py (Verifier bookkeeping)"
    if "json" in f or "_json" in name:
        return "JSON decoding of data + metadata (json)"
    if "strftime" in name or "astimezone" in name:
        return "timestamp formatting (strftime in chain._instant)"
    if f.endswith(("shared/rows.py", "shared/events.py")) or f == "<string>":
        return "rows -> RecordedEvent (from_row, dataclass __init__)"
    if "asyncpg" in f or "asyncpg" in name:
        return "asyncpg (cursor fetch, record decoding)"
    if f.endswith("bench/replay.py"):
        return "bench loop + fold"
    if "signing.py" in f or "cryptography" in f or "base64" in f:
        return "checkpoint signatures (Ed25519)"
    return OTHER


def categorise(stats: pstats.Stats) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """cProfile's own time per function, summed by what the function belongs to; a builtin
    (sorted, isinstance, BytesIO.write, str.encode ...) counts for the part that called it."""
    groups: dict[str, float] = {}
    top: list[tuple[float, str, int]] = []
    total = 0.0
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, ncalls, tottime, _cum, callers) in raw.items():
        total += tottime
        top.append((tottime, f"{os.path.basename(filename)}:{name}", ncalls))
        part = _part(filename, name)
        if part != OTHER or filename != "~" or not callers:
            groups[part] = groups.get(part, 0.0) + tottime
            continue
        for (cf, _cl, cn), caller_stats in callers.items():
            caller = _part(cf, cn)
            groups[caller] = groups.get(caller, 0.0) + caller_stats[2]
    shares = {k: round(v / total, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}
    top.sort(reverse=True)
    return shares, [
        {"function": name, "calls": calls, "share": round(t / total, 3)}
        for t, name, calls in top[:12]
    ]


async def profile(urls: Mapping[str, str]) -> dict[str, Any]:
    """cProfile of (a) over every service's whole log (verify has no limit)."""
    profiler = cProfile.Profile()
    n = 0
    for url in urls.values():
        async with connection(url) as conn:
            profiler.enable()
            n += (await scan_verify(conn)).events  # verify walks the whole log
            profiler.disable()
    shares, top = categorise(pstats.Stats(profiler))
    return {"events": n, "own_time_share_by_part": shares, "top_functions": top}


# -- eventsourcing --------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEvent(DomainEvent):
    """Our events as eventsourcing domain events: the same envelope and payload."""

    stream_type: str
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]
    metadata: dict[str, Any]


NAMESPACE = uuid.UUID("6f1c1c2a-5b8e-4a8b-9a57-3d0c8e1f0b11")


def _datastore(url: str) -> PostgresDatastore:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    return PostgresDatastore(
        dbname=parts.path.lstrip("/"),
        host=host,
        port=parts.port or int(query.get("port", ["5432"])[0]),
        user=parts.username or "postgres",
        password=parts.password or "",
        pool_size=1,
        # its stored function: one statement per batch. The default pipeline (LOCK, NOTIFY,
        # INSERT) deadlocked here in psycopg's pipeline sync at 500-1,000 events a batch
        enable_db_functions=True,
    )


def _mapper() -> Mapper[uuid.UUID]:
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    return Mapper(transcoder=transcoder)


async def eventsourcing_run(clock: Clock, url: str, counts: Mapping[str, int]) -> dict[str, Any]:
    """Write the same payloads through PostgresApplicationRecorder, then read them back."""
    datastore = _datastore(url)
    try:
        recorder = PostgresApplicationRecorder(datastore)
        recorder.create_table()
        mapper = _mapper()
        total = sum(counts.values())
        m: dict[str, float] = {}
        with clock.measure(m):
            written = 0
            for service, n in counts.items():
                source = drafts(service, SEED)
                for start in range(0, n, ES_BATCH):
                    batch: list[StoredEvent] = []
                    for _ in range(min(ES_BATCH, n - start)):
                        d = next(source)
                        batch.append(
                            mapper.to_stored_event(
                                HistoryEvent(
                                    originator_id=uuid.uuid5(NAMESPACE, d.stream_id),
                                    originator_version=d.stream_version,
                                    timestamp=d.recorded_at,
                                    stream_type=d.stream_type,
                                    event_type=d.event_type,
                                    occurred_at=d.occurred_at,
                                    data=d.data,
                                    metadata=d.metadata,
                                )
                            )
                        )
                    recorder.insert_events(batch)
                    written += len(batch)
                    await asyncio.sleep(0)  # let Ctrl-C in
        out: dict[str, Any] = {
            "events": written,
            "write_including_generation": _timing(written, m).as_dict(),
            "psycopg": f"{_psycopg_impl()}",
        }
        with datastore.get_connection() as conn:
            conn.execute("VACUUM ANALYZE stored_events")
        for decode in (False, True):
            m = {}
            with clock.measure(m):
                n, versions = 0, {}
                start_at = 1
                while True:
                    page: Sequence[Notification] = recorder.select_notifications(
                        start=start_at, limit=PAGE
                    )
                    if not page:
                        break
                    if decode:
                        for notification in page:
                            event = mapper.to_domain_event(notification)
                            versions[event.originator_id] = event.originator_version
                    n += len(page)
                    start_at = page[-1].id + 1
                    await asyncio.sleep(0)
            key = "read_and_deserialise" if decode else "read_notifications"
            out[key] = _timing(n, m).as_dict()
            if n != total:
                out[key]["error"] = f"read {n} of {total}"
        return out
    finally:
        datastore.close()


def _psycopg_impl() -> str:
    import psycopg

    return f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__})"


# -- the run ------------------------------------------------------------------------------------


def split(total: int) -> dict[str, int]:
    counts = {s: int(total * SHARE[s]) for s in SERVICES}
    counts["shipments"] += total - sum(counts.values())
    return counts


async def main_async(args: argparse.Namespace) -> None:
    cancel_on_sigterm()
    server = pg_server(args.pg)
    env = await environment(server, args.pg)
    meter = CpuMeter()
    meter.watch("bench", os.getpid())
    meter.watch("postgres", await postmaster_pid(server), children=True)
    clock = Clock(meter)
    if args.rebuild_only:
        header("replay benchmark: read-model rebuilds only", env)
        only: dict[str, Any] = {
            "benchmark": "replay-rebuild",
            "environment": env,
            "parameters": {"events_per_service": args.rebuild_events or 50_000, "seed": SEED},
            "rebuild": await rebuild_only(clock, server, args),
        }
        if args.save:
            say(f"results: {write_results(args.save, only)}")
        return
    counts = split(args.events)
    results: dict[str, Any] = {
        "benchmark": "replay",
        "note": MACHINE_NOTE.format(cores=env["cores"])
        + " The measured steps are one process; PostgreSQL serves it from another core.",
        "environment": env,
        "parameters": {
            "events": args.events,
            "per_service": counts,
            "rebuild_events_per_service": args.rebuild_events or "all",
            "replay_events_per_service": args.replay_events,
            "eventsourcing_events": args.es_events,
            "cursor_page": PAGE,
            "checkpoint_every": CHECKPOINT_EVERY,
            "seed": SEED,
        },
    }
    header("replay benchmark: read + verify + fold, rebuilds, and eventsourcing's read rate", env)
    async with AsyncExitStack() as cleanup:
        urls: dict[str, str] = {}
        say(f"generating {args.events:,} events in {len(SERVICES)} fresh databases ...")
        for service in SERVICES:
            urls[service] = await cleanup.enter_async_context(
                fresh_database(server, audit_replay.schema_of(service))
            )
        wall = time.perf_counter()
        generated = await generate_all([(s, urls[s], counts[s]) for s in SERVICES])
        wall = time.perf_counter() - wall
        for service in SERVICES:
            g = generated[service]
            say(
                f"  {service}: {g.events:,} events in {g.streams:,} streams,"
                f" {g.seconds:.1f} s ({g.events / g.seconds:,.0f} events/s"
                " incl. COPY, chain, VACUUM)"
            )
        results["generation"] = {
            s: {
                "events": g.events,
                "streams": g.streams,
                "signed_checkpoints": g.checkpoints,
                "seconds": round(g.seconds, 2),
                "events_per_second": round(g.events / g.seconds),
            }
            for s, g in generated.items()
        }
        results["generation"]["total"] = {
            "events": args.events,
            "seconds": round(wall, 2),
            "events_per_second": round(args.events / wall),
            "processes": "one per service, two at a time",
        }
        say(f"  generated in {wall:.1f} s ({args.events / wall:,.0f} events/s)")

        say("measuring (one process): rows, + from_row, (a) verify + fold, (a) deep ...")
        subset = split(args.es_events or args.events)
        measured: dict[str, dict[str, Any]] = {s: {} for s in SERVICES}
        heads: dict[str, dict[str, str]] = {s: {} for s in SERVICES}
        for service in SERVICES:
            for kind in ("rows", "decode", "verify", "deep"):
                timing, scan = await measure_scan(
                    clock,
                    urls[service],
                    kind,
                    sealed_head=generated[service].events,
                    # from_row alone on as many events as eventsourcing reads back
                    limit=subset[service] if kind == "decode" else None,
                )
                entry = timing.as_dict()
                if kind in ("verify", "deep"):
                    entry |= {
                        "intact": scan.intact,
                        "problem": scan.problem,
                        "head_hash": scan.head,
                        "streams": scan.streams,
                        "version_gaps": scan.version_gaps,
                        "checkpoints_checked": scan.checkpoints,
                    }
                    entry["events_canonicalised_again"] = scan.slow_path
                    heads[service][kind] = scan.head
                measured[service][kind] = entry
                say(f"  {service:<9} {LABELS[kind]:<28} {timing.rate:>10,.0f} events/s")
            expected = generated[service].head.hex()
            ok = heads[service]["verify"] == expected == heads[service]["deep"]
            measured[service]["heads_agree"] = ok
            if not (ok and measured[service]["verify"]["intact"]):
                say(
                    f"  !! {service}: chain not intact or heads differ:"
                    f" {measured[service]['verify']}"
                )
        totals: dict[str, Any] = {}
        for kind in ("rows", "decode", "verify", "deep"):
            events = sum(measured[s][kind]["events"] for s in SERVICES)
            seconds = sum(measured[s][kind]["seconds"] for s in SERVICES)
            cpu = sum(measured[s][kind]["client_cpu_seconds"] for s in SERVICES)
            totals[kind] = {
                "events": events,
                "seconds": round(seconds, 3),
                "events_per_second": round(events / seconds),
                "client_cpu_seconds": round(cpu, 3),
                "events_per_client_cpu_second": round(events / cpu) if cpu else None,
            }
        measured_total = totals

        which = (
            f"the first {args.rebuild_events:,} events" if args.rebuild_events else "every event"
        )
        say(
            f"measuring (c): rebuilds of {which}"
            " of each service with its real projections, and audit replays of the first"
            f" {args.replay_events:,} into a scratch database ..."
        )
        rebuilds: dict[str, Any] = {}
        for service in SERVICES:
            n = min(args.rebuild_events or counts[service], counts[service])
            if n == counts[service]:
                url = urls[service]
            else:
                url = await cleanup.enter_async_context(
                    fresh_database(server, audit_replay.schema_of(service))
                )
                await generate_all([(service, url, n)])
            rebuilds[service] = await measure_rebuild(
                clock, server, url, service, n, min(args.replay_events, n)
            )
            r = rebuilds[service]
            replay_rate = r["replay"].get("events_per_second")
            say(
                f"  {service:<9} rebuild {r['rebuild']['events_per_second']:>8,} events/s;"
                f" audit replay "
                + (f"{replay_rate:,} events/s" if replay_rate else r["replay"].get("error", "?"))
            )
        rb_events = sum(rebuilds[s]["rebuild"]["events"] for s in SERVICES)
        rb_seconds = sum(rebuilds[s]["rebuild"]["seconds"] for s in SERVICES)
        rebuild_total = {
            "events": rb_events,
            "seconds": round(rb_seconds, 3),
            "events_per_second": round(rb_events / rb_seconds) if rb_seconds else None,
            "whole_history": rb_events == sum(counts.values()),
        }

        verify_rate = measured_total["verify"]["events_per_second"]
        target_met = verify_rate >= TARGET
        diagnosis: dict[str, Any] = {}
        if not target_met or args.always_profile:
            say("(a) is below the target: timing each step, then profiling (a) ...")
            diagnosis["us_per_event"] = await breakdown(urls, args.profile_events // 3)
            diagnosis["cprofile"] = await profile(urls)

        es: dict[str, Any] = {}
        if args.es_events:
            say(f"eventsourcing: writing {args.es_events:,} events through its recorder ...")
            es_url = await cleanup.enter_async_context(fresh_database(server))
            es = await eventsourcing_run(clock, es_url, split(args.es_events))
            say(
                f"  written at {es['write_including_generation']['events_per_second']:,} events/s;"
                f" read {es['read_notifications']['events_per_second']:,} events/s,"
                f" with deserialisation {es['read_and_deserialise']['events_per_second']:,}"
            )

    results["measured"] = measured
    results["measured_total"] = measured_total
    results["rebuild"] = rebuilds | {"total": rebuild_total}
    results["target"] = {
        "what": "read + verify + fold, events/s on one core, all three services",
        "events_per_second": TARGET,
        "measured": verify_rate,
        "met": target_met,
        "canonicalising_every_event_again": measured_total["deep"]["events_per_second"],
    }
    results["diagnosis"] = diagnosis
    results["eventsourcing"] = es
    report(results, counts)
    if args.save:
        say(f"results: {write_results(args.save, results)}")


def _cell(m: Mapping[str, Any]) -> str:
    return f"{m['events_per_second']:,} ({m['client_cpu_seconds']:.1f})"


def report(results: Mapping[str, Any], counts: Mapping[str, int]) -> None:
    measured, total = results["measured"], results["measured_total"]
    say()
    say("events/s (wall; client CPU-seconds in brackets), per service and in total")
    rows = []
    for kind in ("rows", "decode", "verify", "deep"):
        rows.append(
            [
                LABELS[kind],
                *(_cell(measured[s][kind]) for s in SERVICES),
                f"{total[kind]['events_per_second']:,} ({total[kind]['client_cpu_seconds']:.1f})",
            ]
        )
    rb = results["rebuild"]
    for kind in ("rebuild", "replay"):
        rows.append(
            [
                LABELS[kind],
                *(
                    f"{rb[s][kind]['events_per_second']:,} ({rb[s][kind]['events']:,} ev)"
                    if "events_per_second" in rb[s][kind]
                    else "failed"
                    for s in SERVICES
                ),
                f"{rb['total']['events_per_second']:,}" if kind == "rebuild" else "",
            ]
        )
    say(table(["", *(f"{s} ({counts[s]:,})" for s in SERVICES), "total"], rows))
    for s in SERVICES:
        if "error" in rb[s]["replay"]:
            say(f"  audit replay of {s} failed: {rb[s]['replay']['error']}")
    say(
        f"read-model rebuild of {rb['total']['events']:,} events"
        + (" (the whole history)" if rb["total"]["whole_history"] else "")
        + f": {rb['total']['seconds']:,.1f} s, {rb['total']['events_per_second']:,} events/s"
    )
    t = results["target"]
    say()
    say(
        f"target: read + verify + fold >= {t['events_per_second']:,} events/s on one core:"
        f" {t['measured']:,} -> {met(t['met'])}"
        f" (canonicalising every event again: {t['canonicalising_every_event_again']:,})"
    )
    d = results["diagnosis"]
    if d:
        say("where (a) spends its time, µs per event, each step timed alone:")
        for k, v in d["us_per_event"].items():
            say(f"  {v:>10}  {k}")
        say(f"cProfile of (a) over {d['cprofile']['events']:,} events, own time by part:")
        for k, v in d["cprofile"]["own_time_share_by_part"].items():
            say(f"  {v:>6.1%}  {k}")
    es = results["eventsourcing"]
    if es:
        say()
        say(f"eventsourcing ({es['psycopg']}), {es['events']:,} events, vs ours (total):")
        say(
            table(
                ["", "events/s", "client CPU s"],
                [
                    [
                        "eventsourcing select_notifications",
                        f"{es['read_notifications']['events_per_second']:,}",
                        es["read_notifications"]["client_cpu_seconds"],
                    ],
                    [
                        "eventsourcing + Mapper deserialisation",
                        f"{es['read_and_deserialise']['events_per_second']:,}",
                        es["read_and_deserialise"]["client_cpu_seconds"],
                    ],
                    [
                        "ours: read rows",
                        f"{total['rows']['events_per_second']:,}",
                        total["rows"]["client_cpu_seconds"],
                    ],
                    [
                        "ours: read + from_row",
                        f"{total['decode']['events_per_second']:,}",
                        total["decode"]["client_cpu_seconds"],
                    ],
                    [
                        "ours: read + verify + fold",
                        f"{total['verify']['events_per_second']:,}",
                        total["verify"]["client_cpu_seconds"],
                    ],
                    [
                        "ours: the same, canonicalising every event again",
                        f"{total['deep']['events_per_second']:,}",
                        total["deep"]["client_cpu_seconds"],
                    ],
                ],
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="history size, all services")
    parser.add_argument("--pg", default="embedded", help="embedded | system | a server URL")
    parser.add_argument(
        "--rebuild-events",
        type=int,
        default=0,
        help="events per service for the read-model rebuilds (c); 0: the whole history",
    )
    parser.add_argument(
        "--replay-events",
        type=int,
        default=4_000,
        help="events per service replayed by the audit replay into a scratch database (c)",
    )
    parser.add_argument(
        "--es-events",
        type=int,
        default=None,
        help=f"events written through eventsourcing (default: --events, at most {ES_DEFAULT:,};"
        " 0 to skip)",
    )
    parser.add_argument(
        "--profile-events",
        type=int,
        default=30_000,
        help="events timed step by step when (a) misses (its cProfile walks every log)",
    )
    parser.add_argument("--always-profile", action="store_true", help="profile even when met")
    parser.add_argument(
        "--rebuild-only",
        action="store_true",
        help="only the rebuilds (c), of --rebuild-events events per service (default 50,000),"
        " each in a database of its own; nothing saved unless --save is given",
    )
    parser.add_argument(
        "--services",
        type=lambda v: [s for s in v.split(",") if s],
        default=list(SERVICES),
        help="with --rebuild-only: which services, comma-separated (default: all)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="with --rebuild-only: rebuilds per service"
    )
    parser.add_argument(
        "--profile", action="store_true", help="with --rebuild-only: cProfile the last rebuild"
    )
    parser.add_argument(
        "--save",
        default="replay",
        metavar="NAME",
        help="write bench/results/NAME.json ('' to skip)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(json.loads(args.worker)))
        return
    if args.rebuild_only:
        unknown = set(args.services) - set(SERVICES)
        if unknown:
            parser.error(f"--services: unknown {sorted(unknown)} (one of {', '.join(SERVICES)})")
        if args.save == "replay":
            args.save = ""  # a partial run never overwrites the full results
    if args.es_events is None:
        args.es_events = min(args.events, ES_DEFAULT)
    try:
        asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: databases dropped")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
