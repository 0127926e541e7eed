"""The people needs and pledges name are personal data (issue 20, services/pledges/privacy.py):
a need's contact (its recipient records them), a pledge's (its donor), who signed for a
delivery (shipments records them). Sealed in the log and the read models, shown to those who see
contacts today, erasable for good (the log still verifies), exported on request, erased after
the retention period once their records ended. Real PostgreSQL, the pledges app over ASGI.

The people are the demo's (services/shipments/demo/data.py): Olha Kravchenko, head of Kharkiv's
municipal medical warehouse, Karim Benali, who drove Lille's convoy.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.pledges import events as ev
from services.pledges import privacy as personal
from services.pledges import projections, subscriptions
from shared import privacy, privacy_subjects
from shared.auth import Role
from shared.consumer import ConsumerRunner, Incoming
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.metrics import Metrics
from shared.projections import project, rebuild
from shared.testing import seal_everything
from tests.conftest import settings_for
from tests.pledges.conftest import (
    GENERATORS_NEED,
    PledgesApi,
    assert_problem,
    generators_pledge,
    incoming,
    loading,
)

NEED = "/v1/needs/kharkiv-generators"
PLEDGE = "/v1/pledges/lille-generators"
OLHA = {
    "name": "Olha Kravchenko",
    "role": "head of the municipal medical warehouse",
    "email": "o.kravchenko@city.kharkiv.example",
    "phone": "+380 57 700 1234",
}
KARIM = {"name": "Karim Benali", "role": "convoy coordinator", "phone": "+33 6 12 34 56 78"}
# what must appear nowhere in clear once sealed
PERSONAL_VALUES = ("Kravchenko", "o.kravchenko@", "700 1234", "Benali", "12 34 56 78")
TABLES = ("events", "needs", "pledges", "deliveries", "idempotency_keys", "privacy_occurrences")


async def _in_clear(api: PledgesApi) -> dict[str, list[str]]:
    """Which personal values lie in clear in which table (events: their data)."""
    found: dict[str, list[str]] = {}
    for table in TABLES:
        column = "t.data" if table == "events" else "t"
        rows = await api.fetch(f"SELECT {column}::text AS text FROM {table} t")
        hits = sorted({v for v in PERSONAL_VALUES for r in rows if v in r["text"]})
        if hits:
            found[table] = hits
    return found


async def _with_contacts(api: PledgesApi) -> None:
    await api.ok("/v1/needs", {**GENERATORS_NEED, "contact": OLHA}, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(contact=KARIM), by="lille")


def _person(shown: dict[str, Any] | None) -> tuple[Any, ...]:
    assert shown is not None
    return (shown["name"], shown.get("email"), shown.get("phone"), shown["role"], shown["erased"])


OLHA_SHOWN = (OLHA["name"], OLHA["email"], OLHA["phone"], OLHA["role"], False)
KARIM_SHOWN = (KARIM["name"], None, KARIM["phone"], KARIM["role"], False)


def _erased(person: dict[str, Any], role: str) -> tuple[Any, ...]:
    return (privacy.ERASED, person.get("email") and privacy.ERASED, privacy.ERASED, role, True)


async def _views(api: PledgesApi, reader: str, role: Role = Role.MEMBER) -> dict[str, Any]:
    """Every view that shows the contacts, as `reader` sees them."""
    now = datetime.now(UTC).isoformat()
    return {
        "need": (await api.get(NEED, reader=reader, role=role)).get("contact"),
        "need_as_of": (await api.get(NEED, reader=reader, role=role, as_of=now)).get("contact"),
        "needs": (await api.get("/v1/needs", reader=reader, role=role))["items"][0].get("contact"),
        "pledge": (await api.get(PLEDGE, reader=reader, role=role)).get("contact"),
        "pledge_as_of": (await api.get(PLEDGE, reader=reader, role=role, as_of=now)).get("contact"),
    }


async def _histories(api: PledgesApi, reader: str, role: Role = Role.MEMBER) -> dict[str, Any]:
    need = await api.get(f"{NEED}/history", reader=reader, role=role)
    pledge = await api.get(f"{PLEDGE}/history", reader=reader, role=role)
    return {
        "need": need["events"][0]["data"]["contact"],
        "pledge": pledge["events"][0]["data"]["contact"],
    }


async def test_contacts_are_sealed_in_the_log_and_read_models_and_shown_only_to_whom_may(
    api: PledgesApi,
) -> None:
    await _with_contacts(api)
    assert await _in_clear(api) == {}
    for event_type in (ev.NEED_POSTED, ev.PLEDGE_MADE):
        [row] = await api.fetch(
            "SELECT schema_version, data FROM events WHERE event_type = $1", event_type
        )
        assert row["schema_version"] == 2
        ev.SCHEMAS[event_type].model_validate(json.loads(row["data"]))
    [need] = await api.events(ev.NEED_POSTED)
    assert need["contact"]["role"] == OLHA["role"], "a role names a function: in clear"
    assert need["contact"]["personal"] == ["email", "name", "phone"]

    for reader, role in (("kharkiv", Role.MEMBER), ("audit", Role.AUDITOR)):
        views = await _views(api, reader, role)
        assert {k: _person(v) for k, v in views.items()} == {
            "need": OLHA_SHOWN,
            "need_as_of": OLHA_SHOWN,
            "needs": OLHA_SHOWN,
            "pledge": KARIM_SHOWN,
            "pledge_as_of": KARIM_SHOWN,
        }, reader
        histories = await _histories(api, reader, role)
        assert _person(histories["need"]) == OLHA_SHOWN
        assert _person(histories["pledge"]) == KARIM_SHOWN
    # the donor sees its pledge's contact, not the recipient's need's
    lille = await _views(api, "lille")
    assert lille["need"] is None and lille["needs"] is None and lille["need_as_of"] is None
    assert _person(lille["pledge"]) == KARIM_SHOWN
    bucha = await _views(api, "bucha")
    assert set(bucha.values()) == {None}
    # the exports carry no persons
    exports = {
        "/v1/reports/needs": {},
        "/v1/reports/pledges": {},
        "/v1/reports/needs?format=csv": {},
        "/v1/exports/iati": {"organisation": "kharkiv"},
    }
    for path, params in exports.items():
        response = await api.client.get(
            path, params=params, headers=await api.as_("audit", Role.AUDITOR)
        )
        assert response.status_code == 200, response.text
        assert not [v for v in PERSONAL_VALUES if v in response.text], path


async def test_erasure_by_the_recording_organisation_shows_erased_everywhere_and_verifies(
    api: PledgesApi,
) -> None:
    await _with_contacts(api)
    before_erasure = datetime.now(UTC).isoformat()
    kharkiv, lille = await api.as_("kharkiv"), await api.as_("lille")
    olha = (await api.get(NEED, reader="kharkiv"))["contact"]["subject_id"]
    karim = (await api.get(PLEDGE, reader="lille"))["contact"]["subject_id"]

    exported = await api.client.get(f"/v1/privacy/subjects/{olha}", headers=kharkiv)
    assert exported.status_code == 200, exported.text
    [occurrence] = exported.json()["occurrences"]
    assert (occurrence["event_type"], occurrence["stream_id"]) == (
        ev.NEED_POSTED,
        "need-kharkiv-generators",
    )
    assert occurrence["persons"][0]["phone"] == OLHA["phone"]
    # a need's contact is its recipient's, a pledge's its donor's: to anyone else, unknown
    for path, headers in ((olha, lille), (karim, kharkiv)):
        assert_problem(await api.client.get(f"/v1/privacy/subjects/{path}", headers=headers), 404)
        refused = await api.client.post(
            f"/v1/privacy/subjects/{path}/erasure",
            json={"legal_basis": "gdpr-art-17"},
            headers=headers,
        )
        assert_problem(refused, 404)
    assert _person((await api.get(NEED, reader="kharkiv"))["contact"]) == OLHA_SHOWN

    for subject, headers in ((olha, kharkiv), (karim, lille)):
        erased = await api.client.post(
            f"/v1/privacy/subjects/{subject}/erasure",
            json={"legal_basis": "gdpr-art-17"},
            headers=headers,
        )
        assert erased.status_code == 200, erased.text
        assert erased.json()["erased"]

    olha_erased, karim_erased = _erased(OLHA, OLHA["role"]), _erased(KARIM, KARIM["role"])

    async def check() -> None:
        for reader, role in (("kharkiv", Role.MEMBER), ("audit", Role.AUDITOR)):
            views = await _views(api, reader, role)
            assert {k: _person(v) for k, v in views.items()} == {
                "need": olha_erased,
                "need_as_of": olha_erased,
                "needs": olha_erased,
                "pledge": karim_erased,
                "pledge_as_of": karim_erased,
            }
            before = await api.get(NEED, reader=reader, role=role, as_of=before_erasure)
            assert _person(before["contact"]) == olha_erased, "as it stood before: erased too"
            histories = await _histories(api, reader, role)
            assert _person(histories["need"]) == olha_erased
            assert _person(histories["pledge"]) == karim_erased
        for subject, headers in ((olha, kharkiv), (karim, lille)):
            after = (
                await api.client.get(f"/v1/privacy/subjects/{subject}", headers=headers)
            ).json()
            assert after["erased"] and after["legal_basis"] == "gdpr-art-17"
            assert after["occurrences"][0]["persons"][0]["name"] == privacy.ERASED
            assert not [v for v in PERSONAL_VALUES if v in json.dumps(after)]

    await check()
    conn = await asyncpg.connect(api.url)
    try:
        await seal_everything(conn)
        assert await rebuild(conn, projections.ALL) == await api.count_events()
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM privacy_occurrences WHERE subject_id = ANY($1::text[])",
                [olha, karim],
            )
            == 2
        ), "the rebuild fills the occurrences again"
    finally:
        await conn.close()
    await check()
    auditor = await api.as_("audit", Role.AUDITOR)
    verdict = (await api.client.get("/v1/audit/verify", headers=auditor)).json()
    assert verdict["intact"] and verdict["head_position"] == await api.count_events(), verdict
    # erasure events name no one
    for erasure in await api.events(privacy_subjects.SUBJECT_ERASED):
        assert not [v for v in PERSONAL_VALUES if v in json.dumps(erasure)]


async def test_retention_erases_the_people_of_ended_needs_and_pledges_only_after_the_period(
    api: PledgesApi,
) -> None:
    await _with_contacts(api)
    olha = (await api.get(NEED, reader="kharkiv"))["contact"]["subject_id"]
    karim = (await api.get(PLEDGE, reader="lille"))["contact"]["subject_id"]
    retention = timedelta(days=730)
    later = datetime.now(UTC) + retention + timedelta(days=1)
    conn = await asyncpg.connect(api.url)
    try:

        async def due(at: datetime) -> list[str]:
            rows = await conn.fetch(personal.RETENTION_DUE, at - retention, 100)
            return sorted(r["subject_id"] for r in rows)

        assert await due(later) == [], "both records run: their people are kept"
        await api.ok(f"{NEED}/close", {"reason": "covered by Lille's convoy"}, by="kharkiv")
        assert await due(datetime.now(UTC)) == [], "closed today: kept for the period"
        assert await due(later) == [olha], "the pledge still runs"
        await api.ok(f"{PLEDGE}/withdraw", {"reason": "the convoy was cancelled"}, by="lille")
        assert await due(later) == sorted([olha, karim])
        erased = await privacy_subjects.erase_expired(
            conn,
            due_sql=personal.RETENTION_DUE,
            retention=retention,
            now=later,
            metadata=Metadata(actor="pledges-worker"),
        )
        assert sorted(erased) == sorted([olha, karim])
        assert await due(later + timedelta(days=1)) == [], "erased once"
    finally:
        await conn.close()
    need = await api.get(NEED, reader="kharkiv")
    assert _person(need["contact"]) == _erased(OLHA, OLHA["role"])
    exported = (
        await api.client.get(f"/v1/privacy/subjects/{karim}", headers=await api.as_("lille"))
    ).json()
    assert exported["legal_basis"] == "retention" and exported["erased_by"] == "retention"


@pytest.fixture
async def runner(api: PledgesApi) -> AsyncIterator[ConsumerRunner]:
    db = Database(api.url, max_size=2)
    await db.open()
    try:
        yield ConsumerRunner(
            service="pledges",
            settings=settings_for(api.url),
            db=db,
            metrics=Metrics("pledges-test"),
            handlers=subscriptions.HANDLERS,
        )
    finally:
        await db.close()


def _delivery(confirmed_by: dict[str, Any], *, schema_version: int) -> Incoming:
    event = incoming(
        "shipments",
        "shipments.delivery-confirmed",
        {
            "convoy_id": "convoy-1",
            "recipient_id": "kharkiv",
            "origin_id": "lille",
            "carrier_id": "lille",
            "confirmed_by": confirmed_by,
            "document": None,
            "lines": [
                {
                    "manifest_line_id": "m1",
                    "pledge_id": "lille-generators",
                    "line_id": "generators",
                    "item": "Medium-sized generator",
                    "unit": "pieces",
                    "loaded": "20",
                    "received": "20",
                    "damaged": "0",
                    "short": "0",
                    "lost": "0",
                    "correlation_id": None,
                }
            ],
        },
        stream_id="convoy-convoy-1",
    )
    return replace(event, schema_version=schema_version)


async def test_a_v2_delivery_keeps_shipments_sealed_receiver_and_shows_it_held_by_shipments(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(commit=True), by="lille")
    # as shipments seals the receiver (shipments.delivery-confirmed v2): the name under a key
    # only shipments holds
    subject = f"shipments-{uuid.uuid4().hex}"
    confirmed_by = {
        "role": OLHA["role"],
        "subject_id": subject,
        "personal": ["name"],
        "sealed": base64.b64encode(os.urandom(60)).decode(),
    }
    event = _delivery(confirmed_by, schema_version=2)
    for loaded in loading(event):
        await runner.apply(loaded)
    assert await runner.apply(event)
    [recorded] = await api.events(ev.DELIVERY_RECORDED)
    assert recorded["confirmed_by"] == confirmed_by, "kept as shipments sealed it"
    [row] = await api.fetch(
        "SELECT schema_version FROM events WHERE event_type = $1", ev.DELIVERY_RECORDED
    )
    assert row["schema_version"] == 3  # persons sealed since 2, no derived figures since 3
    [stored] = await api.fetch("SELECT confirmed_by FROM deliveries")
    assert json.loads(stored["confirmed_by"]) == confirmed_by
    assert (await api.get(PLEDGE, reader="kharkiv"))["lines"][0]["recipient_confirmed"] == "20"
    history = await api.get(f"{PLEDGE}/history", reader="kharkiv")
    [shown] = [
        e["data"]["confirmed_by"]
        for e in history["events"]
        if e["event_type"] == ev.DELIVERY_RECORDED
    ]
    assert shown == {
        "role": OLHA["role"],
        "subject_id": subject,
        "name": personal.HELD_ELSEWHERE,
        "erased": False,
    }
    # the donor reads the pledge's history too, but who signed for the goods is the
    # recipient's to show: the role alone, no name and no subject id
    donors = await api.get(f"{PLEDGE}/history", reader="lille")
    assert [
        e["data"]["confirmed_by"]
        for e in donors["events"]
        if e["event_type"] == ev.DELIVERY_RECORDED
    ] == [{"role": OLHA["role"], "name": personal.WITHHELD}]
    assert subject not in json.dumps(donors)
    # its occurrence is recorded (an access request at shipments names this copy too)
    [occurrence] = await api.fetch(
        "SELECT stream_id FROM privacy_occurrences WHERE subject_id = $1", subject
    )
    assert occurrence["stream_id"] == "pledge-lille-generators"


async def test_seal_v1_turns_clear_persons_into_sealed_ones_and_old_events_still_show(
    api: PledgesApi,
) -> None:
    now = datetime.now(UTC)
    posted_v1 = {
        "need_id": "kharkiv-generators",
        "recipient_id": "kharkiv",
        "kind": "item",
        "category": "generators",
        "description": "Generators",
        "quantity": "100",
        "unit": "pieces",
        "amount": None,
        "currency": None,
        "priority": "critical",
        "serves": ["heating"],
        "deadline": None,
        "internal_note": None,
        "contact": {**OLHA},
    }
    ev.PREVIOUS[ev.NEED_POSTED, 1].model_validate(posted_v1)
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            recorded = await PostgresEventStore(conn).append(
                stream_type=ev.STREAM_NEED,
                stream_id="need-kharkiv-generators",
                expected_version=0,
                events=[NewEvent(ev.NEED_POSTED, posted_v1, occurred_at=now)],
                metadata=Metadata(actor="before-issue-20"),
                now=now,
            )
            await project(conn, projections.ALL, recorded)
        shown = (await api.get(NEED, reader="kharkiv"))["contact"]
        assert _person(shown) == OLHA_SHOWN and shown["subject_id"] is None, "older log: clear"

        sealed = await personal.seal_v1(conn, ev.NEED_POSTED, posted_v1, now=now)
        assert sealed is not None
        ev.NeedPosted.model_validate(sealed)
        assert not [v for v in PERSONAL_VALUES if v in json.dumps(sealed)]
        opened = await privacy.reveal(conn, sealed["contact"])
        assert {k: opened[k] for k in OLHA} == OLHA
        [subject] = await privacy_subjects.find(conn, organisation="kharkiv", name=OLHA["name"])
        assert subject.subject_id == sealed["contact"]["subject_id"], "the recipient's subject"
        assert await personal.seal_v1(conn, ev.NEED_POSTED, sealed, now=now) is None
        assert await personal.seal_v1(conn, ev.NEED_CLOSED, posted_v1, now=now) is None

        pledge_v1 = {
            "pledge_id": "lille-generators",
            "donor_id": "lille",
            "recipient_id": "kharkiv",
            "partnership_id": None,
            "description": None,
            "lines": [
                {
                    "line_id": "1",
                    "kind": "money",
                    "need_id": None,
                    "item": "fuel",
                    "category": "fuel",
                    "quantity": None,
                    "unit": None,
                    "weight_kg": None,
                    "value_amount": None,
                    "value_currency": None,
                    "amount": 1000,
                    "currency": "EUR",
                }
            ],
            "contact": {**KARIM, "email": None},
        }
        ev.PREVIOUS[ev.PLEDGE_MADE, 1].model_validate(pledge_v1)
        sealed_pledge = await personal.seal_v1(conn, ev.PLEDGE_MADE, pledge_v1, now=now)
        assert sealed_pledge is not None
        assert sealed_pledge["contact"]["personal"] == ["name", "phone"]
        [karim] = await privacy_subjects.find(conn, organisation="lille", name=KARIM["name"])
        assert karim.subject_id == sealed_pledge["contact"]["subject_id"], "the donor's subject"

        delivered_v1 = {
            "pledge_id": "lille-generators",
            "line_id": "1",
            "convoy_id": "c",
            "manifest_line_id": "m1",
            "delivery_event_id": str(uuid.uuid4()),
            "recipient_id": "kharkiv",
            "unit": "pieces",
            "loaded": "1",
            "received": "1",
            "damaged": "0",
            "short": "0",
            "lost": "0",
            "confirmed_by": {"name": OLHA["name"], "role": OLHA["role"]},
            "document": None,
            "delivered_total": "1",
            "pledge_status": "fulfilled",
        }
        ev.PREVIOUS[ev.DELIVERY_RECORDED, 1].model_validate(delivered_v1)
        sealed_delivery = await personal.seal_v1(conn, ev.DELIVERY_RECORDED, delivered_v1, now=now)
        assert sealed_delivery is not None
        ev.PREVIOUS[ev.DELIVERY_RECORDED, 2].model_validate(sealed_delivery)  # sealed: v2
        assert OLHA["name"] not in json.dumps(sealed_delivery)
        assert sealed_delivery["confirmed_by"]["subject_id"] == subject.subject_id
        opened = await privacy.reveal(conn, sealed_delivery["confirmed_by"])
        assert (opened["name"], opened["role"]) == (OLHA["name"], OLHA["role"])
    finally:
        await conn.close()


async def test_a_contact_of_the_longest_escaped_values_is_sealed_never_a_500(
    api: PledgesApi,
) -> None:
    """Control characters are refused in free text (422); of what is admitted, a character
    outside the BMP takes four bytes in the sealed JSON and a quote or backslash two: the
    longest contact the request model admits still fits the event's sealed field."""
    refused = {"name": "\x01" * 200, "email": "a@a.example", "phone": "1"}
    answer = await api.post("/v1/needs", {**GENERATORS_NEED, "contact": refused}, by="kharkiv")
    assert answer.status_code == 422, answer.text
    worst = {
        "name": "\U0001f600" * 200,
        "email": '"\\' * 120 + "@a.example",
        "phone": "\U0001f4de" * 50,
    }
    answer = await api.post("/v1/needs", {**GENERATORS_NEED, "contact": worst}, by="kharkiv")
    assert answer.status_code == 201, answer.text
    [need] = await api.events(ev.NEED_POSTED)
    assert need["contact"]["personal"] == ["email", "name", "phone"]
