"""The people a convoy names are personal data (issue 20, services/shipments/privacy.py):
sealed in the log and the read models, shown to the carrier, the recipient and auditors and
withheld from others, erasable for good by the organisation that recorded them (the log still
verifies), exported on request, erased by retention once their convoys ended long enough ago.
Real PostgreSQL, the shipments app over ASGI.

The people are the demo's (services/shipments/demo/data.py): the June 2022 Lille - Kharkiv
medicines convoy's drivers Karim Benali and Sophie Lemaire and the escort team leader Andrii
Melnyk who took the goods over (recorded by Lille, origin and carrier, whose key typed them),
and Olha Kravchenko who signed for them (recorded by the recipient, Kharkiv).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.shipments import events as ev
from services.shipments import privacy as personal
from services.shipments import projections, requests
from services.shipments.demo.data import MEDICINES
from shared import privacy, privacy_migration, privacy_subjects, sealer, signing
from shared import projections as proj
from shared.auth import Role
from shared.events import Metadata, NewEvent
from shared.keys import KeyRing
from shared.testing import seal_everything
from tests.shipments.conftest import ShipmentsApi, assert_problem

PLAN = {**MEDICINES.plan, "convoy_id": "c1"}  # Lille carries to Kharkiv
DRIVERS: list[dict[str, Any]] = PLAN["drivers"]
KARIM, SOPHIE = (d["name"] for d in DRIVERS)
HANDOFF = next(e for e in MEDICINES.entries if e["kind"] == "custody_handoff")
ESCORT: dict[str, Any] = HANDOFF["to_party"]["person"]
assert MEDICINES.delivery is not None and MEDICINES.close is not None
RECEIVER: dict[str, Any] = MEDICINES.delivery["receiver"]
PEOPLE = (KARIM, SOPHIE, ESCORT["name"], RECEIVER["name"], *(d["phone"] for d in DRIVERS))
CARRIER = ("lille", Role.LOGISTICS)
RECIPIENT = ("kharkiv", Role.MEMBER)
AUDITOR = ("audit", Role.AUDITOR)
DONOR = ("chu-lille", Role.MEMBER)
ERASED = privacy.ERASED


async def _story(api: ShipmentsApi) -> None:
    """The demo convoy as c1: planned, loaded with the CHU's medicines, on the road (the escort
    takes over before Kharkiv), delivered, closed."""
    await api.pledge_line(
        pledge_id="chu", donor_id="chu-lille", unit="boxes", quantity="100", weight_kg="600"
    )
    planned = await api.client.post("/v1/convoys", json=PLAN, headers=await api.as_(*CARRIER))
    assert planned.status_code == 201, planned.text
    loaded = await api.load(manifest_line_id="m1", pledge_id="chu", quantity="100")
    assert loaded.status_code == 201, loaded.text
    road = await api.entries("c1", *MEDICINES.entries, who=CARRIER)
    assert road.status_code == 200, road.text
    assert MEDICINES.delivery is not None and MEDICINES.close is not None
    delivered = await api.client.post(
        "/v1/convoys/c1/delivery",
        json={
            "receiver": RECEIVER,
            "document": MEDICINES.delivery["document"],
            "lines": [{"manifest_line_id": "m1", "received": "99", "damaged": "1"}],
            "occurred_at": MEDICINES.delivery["occurred_at"],
        },
        headers=await api.as_(*RECIPIENT),
    )
    assert delivered.status_code == 201, delivered.text
    closed = await api.client.post(
        "/v1/convoys/c1/close", json=MEDICINES.close, headers=await api.as_(*CARRIER)
    )
    assert closed.status_code == 200, closed.text


@pytest.fixture
async def story(api: ShipmentsApi) -> ShipmentsApi:
    await _story(api)
    return api


async def _get(api: ShipmentsApi, who: tuple[str, Role], path: str, **params: str) -> Any:
    response = await api.client.get(path, params=params, headers=await api.as_(*who))
    assert response.status_code == 200, response.text
    return response


async def _views(api: ShipmentsApi, who: tuple[str, Role]) -> dict[str, str]:
    """Every view of c1 the caller reads, as text: the convoy, as of an instant, its timeline,
    the lists, its EPCIS export, the deliveries and convoys as HXL CSV."""
    out = {}
    for name, path, params in [
        ("convoy", "/v1/convoys/c1", {}),
        ("as_of", "/v1/convoys/c1", {"as_of": "2022-06-19T00:00:00Z"}),
        ("timeline", "/v1/convoys/c1/timeline", {}),
        ("list", "/v1/convoys", {}),
        ("epcis", "/v1/convoys/c1/epcis", {}),
        ("deliveries", "/v1/deliveries", {}),
        ("deliveries.csv", "/v1/deliveries", {"format": "csv"}),
    ]:
        out[name] = (await _get(api, who, path, **params)).text
    return out


async def _in_clear(url: str, value: str) -> dict[str, int]:
    """Every table of the database holding `value` in clear, with how many rows."""
    conn = await asyncpg.connect(url)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        found = {}
        for table in tables:
            n = await conn.fetchval(
                f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE $1', f"%{value}%"
            )
            if n:
                found[table] = int(n)
        return found
    finally:
        await conn.close()


async def _subjects(api: ShipmentsApi) -> dict[str, str]:
    """Each person's subject id, as the auditor's convoy view shows them."""
    convoy = (await _get(api, AUDITOR, "/v1/convoys/c1")).json()
    out = {d["name"]: d["subject_id"] for d in convoy["drivers"]}
    out[convoy["custody"]["person"]["name"]] = convoy["custody"]["person"]["subject_id"]
    confirmed = convoy["delivery"]["confirmed_by"]
    out[confirmed["name"]] = confirmed["subject_id"]
    return out


async def _erase(
    api: ShipmentsApi, subject_id: str, who: tuple[str, Role], basis: str = "gdpr-art-17"
) -> Any:
    return await api.client.post(
        f"/v1/privacy/subjects/{subject_id}/erasure",
        json={"legal_basis": basis},
        headers=await api.as_(*who),
    )


async def test_the_people_are_sealed_everywhere_the_service_stores_them(
    story: ShipmentsApi,
) -> None:
    for value in PEOPLE:
        assert await _in_clear(story.url, value) == {}, value
    conn = await asyncpg.connect(story.url)
    try:
        versions = {
            r["event_type"]: r["v"]
            for r in await conn.fetch(
                "SELECT event_type, max(schema_version) AS v FROM events GROUP BY event_type"
            )
        }
        occurrences = await conn.fetch(
            "SELECT o.subject_id, e.event_type FROM privacy_occurrences o"
            " JOIN events e USING (event_id) ORDER BY e.id"
        )
    finally:
        await conn.close()
    # the person-carrying types are written with their sealed version (2; convoy-dispatched 3,
    # which dropped the derived line count and weight besides)
    assert {t: versions[t] for t in personal.PERSONAL_TYPES} == dict.fromkeys(
        personal.PERSONAL_TYPES, 2
    ) | {ev.CONVOY_DISPATCHED: 3}
    subjects = await _subjects(story)
    assert sorted(subjects) == sorted([KARIM, SOPHIE, ESCORT["name"], RECEIVER["name"]])
    assert {(r["subject_id"], r["event_type"]) for r in occurrences} == {
        (subjects[KARIM], ev.CONVOY_PLANNED),
        (subjects[SOPHIE], ev.CONVOY_PLANNED),
        (subjects[ESCORT["name"]], ev.CUSTODY_HANDED_OFF),
        (subjects[RECEIVER["name"]], ev.DELIVERY_CONFIRMED),
    }


async def test_the_carrier_the_recipient_and_auditors_see_them_a_donor_does_not(
    story: ShipmentsApi,
) -> None:
    for who in (CARRIER, RECIPIENT, AUDITOR):
        views = await _views(story, who)
        for name in ("convoy", "as_of", "timeline"):
            for person in (KARIM, SOPHIE, ESCORT["name"], RECEIVER["name"]):
                assert person in views[name], (who, name, person)
        # EPCIS names who holds and who signs for the goods (no event of it names drivers)
        assert ESCORT["name"] in views["epcis"] and RECEIVER["name"] in views["epcis"]
        assert (
            RECEIVER["name"] in views["deliveries"] and RECEIVER["name"] in views["deliveries.csv"]
        )
        assert ESCORT["name"] in views["list"]  # who holds the goods now
        convoy = json.loads(views["convoy"])
        assert [{k: d.get(k) for k in ("name", "phone", "vehicle")} for d in convoy["drivers"]] == [
            {k: d.get(k) for k in ("name", "phone", "vehicle")} for d in DRIVERS
        ]
        assert convoy["delivery"]["confirmed_by"] == {
            **RECEIVER,
            "subject_id": convoy["delivery"]["confirmed_by"]["subject_id"],
            "erased": False,
        }
    views = await _views(story, DONOR)
    for name, text in views.items():
        for value in PEOPLE:
            assert value not in text, (name, value)
        assert "sealed" not in text and "shipments-" not in text, name  # nor who, linkably
    convoy = json.loads(views["convoy"])
    assert convoy["drivers"] == [{"vehicle": d["vehicle"], "name": "(withheld)"} for d in DRIVERS]
    assert convoy["custody"]["person"] == {"name": "(withheld)", "role": ESCORT["role"]}
    assert convoy["delivery"]["confirmed_by"] == {"name": "(withheld)", "role": RECEIVER["role"]}


async def test_erased_people_show_as_erased_in_every_view_export_and_rebuild(
    story: ShipmentsApi,
) -> None:
    api = story
    subjects = await _subjects(api)
    karim, sophie, olha = subjects[KARIM], subjects[SOPHIE], subjects[RECEIVER["name"]]
    # only the organisation that recorded a person erases them: others get 404, as if unknown
    assert_problem(await _erase(api, sophie, ("leeds", Role.ORG_ADMIN)), 404)
    assert_problem(await _erase(api, sophie, RECIPIENT), 404)  # drivers are the carrier's
    assert_problem(await _erase(api, olha, CARRIER), 404)  # the receiver is the recipient's
    unrelated = await api.client.get(
        f"/v1/privacy/subjects/{sophie}", headers=await api.as_("leeds", Role.MEMBER)
    )
    assert_problem(unrelated, 404)
    erased = await _erase(api, karim, CARRIER)
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"] is True and erased.json()["erased_by"] == "lille"
    erased = await _erase(api, olha, RECIPIENT)
    assert erased.status_code == 200, erased.text

    async def check() -> None:
        for who in (CARRIER, RECIPIENT, AUDITOR):
            views = await _views(api, who)
            for name in ("convoy", "as_of", "timeline", "epcis"):
                text = views[name]
                assert KARIM not in text and RECEIVER["name"] not in text, (who, name)
                assert DRIVERS[0]["phone"] not in text, (who, name)
                assert ERASED in text and ESCORT["name"] in text, (who, name)
                assert name == "epcis" or SOPHIE in text, (who, name)
            assert RECEIVER["name"] not in views["deliveries.csv"]
            assert ERASED in views["deliveries.csv"]
            convoy = json.loads(views["convoy"])
            assert convoy["drivers"][0] == {
                "vehicle": DRIVERS[0]["vehicle"],
                "subject_id": karim,
                "erased": True,
                "name": ERASED,
                "phone": ERASED,
            }
            assert convoy["drivers"][1]["name"] == SOPHIE and not convoy["drivers"][1]["erased"]
            assert convoy["delivery"]["confirmed_by"] == {
                "role": RECEIVER["role"],
                "subject_id": olha,
                "erased": True,
                "name": ERASED,
            }

    await check()
    verdict = (await _get(api, AUDITOR, "/v1/audit/verify")).json()
    assert verdict["intact"] is True, verdict

    # the access export: every event recording the person, opened (or erased)
    export = (await _get(api, CARRIER, f"/v1/privacy/subjects/{sophie}")).json()
    assert export["service"] == "shipments" and export["organisation_id"] == "lille"
    assert [(o["event_type"], o["stream_id"]) for o in export["occurrences"]] == [
        (ev.CONVOY_PLANNED, "convoy-c1")
    ]
    [person] = export["occurrences"][0]["persons"]
    assert person["name"] == SOPHIE and person["phone"] == DRIVERS[1]["phone"]
    export = (await _get(api, CARRIER, f"/v1/privacy/subjects/{karim}")).json()
    assert export["erased"] is True and export["legal_basis"] == "gdpr-art-17"
    assert export["occurrences"][0]["persons"][0]["name"] == ERASED

    # a rebuild replays the sealed log: the erased stay erased, the occurrences come back
    conn = await asyncpg.connect(api.url)
    try:
        before = await conn.fetch("SELECT * FROM privacy_occurrences ORDER BY 1, 2")
        await proj.rebuild(conn, projections.ALL)
        assert await conn.fetch("SELECT * FROM privacy_occurrences ORDER BY 1, 2") == before
    finally:
        await conn.close()
    await check()


async def test_retention_erases_the_people_of_convoys_ended_longer_ago_than_the_period(
    story: ShipmentsApi,
) -> None:
    api = story
    # Karim drives again for Lille on a convoy still being planned: the same person to Lille
    again = {**PLAN, "convoy_id": "c2", "drivers": [DRIVERS[0]]}
    planned = await api.client.post("/v1/convoys", json=again, headers=await api.as_(*CARRIER))
    assert planned.status_code == 201, planned.text
    subjects = await _subjects(api)
    c2 = (await _get(api, CARRIER, "/v1/convoys/c2")).json()
    assert c2["drivers"][0]["subject_id"] == subjects[KARIM]
    period = timedelta(days=730)
    conn = await asyncpg.connect(api.url)

    async def erase_at(now: datetime) -> set[str]:
        async with conn.transaction():
            return set(
                await privacy_subjects.erase_expired(
                    conn,
                    due_sql=personal.RETENTION_DUE,
                    retention=period,
                    now=now,
                    metadata=Metadata(actor="shipments-worker:retention"),
                )
            )

    try:
        # c1 closed in June 2022, but the people were recorded now: the period counts from both
        recorded = await conn.fetchval("SELECT max(last_recorded_at) FROM privacy_subjects")
        assert await erase_at(recorded + period - timedelta(days=1)) == set()
        later = recorded + period + timedelta(days=1)
        assert await erase_at(later) == {
            subjects[SOPHIE],
            subjects[ESCORT["name"]],
            subjects[RECEIVER["name"]],
        }  # not Karim: c2 is still open
        cancelled = await api.client.post(
            "/v1/convoys/c2/cancel", json={"reason": "no fuel"}, headers=await api.as_(*CARRIER)
        )
        assert cancelled.status_code == 200, cancelled.text
        cancelled_at = datetime.fromisoformat(
            (await _get(api, CARRIER, "/v1/convoys/c2")).json()["cancelled_at"]
        )
        assert await erase_at(cancelled_at + period - timedelta(days=1)) == set()
        assert await erase_at(cancelled_at + period + timedelta(days=1)) == {subjects[KARIM]}
        bases = await conn.fetch("SELECT DISTINCT legal_basis, erased_by FROM privacy_subjects")
        assert [tuple(r) for r in bases] == [("retention", "retention")]
    finally:
        await conn.close()
    convoy = (await _get(api, RECIPIENT, "/v1/convoys/c1")).json()
    assert {d["name"] for d in convoy["drivers"]} == {ERASED}
    assert convoy["delivery"]["confirmed_by"]["name"] == ERASED
    assert convoy["custody"]["person"]["name"] == ERASED


def _clear(value: Any) -> Any:
    """`value` without subject ids, erased flags and empty fields: persons as sent."""
    if isinstance(value, dict):
        return {
            k: _clear(v)
            for k, v in value.items()
            if k not in ("subject_id", "erased") and v is not None
        }
    if isinstance(value, list):
        return [_clear(v) for v in value]
    return value


def _v1_payloads() -> dict[str, dict[str, Any]]:
    """The demo convoy's person-carrying events as version 1 wrote them: persons in clear."""
    planned = ev.V1.ConvoyPlanned.model_validate(
        {k: v for k, v in PLAN.items() if k != "occurred_at"}
    )
    handoff = ev.V1.CustodyHandedOff(
        convoy_id="c1",
        entry_id=HANDOFF["entry_id"],
        entry_sha256="0" * 64,
        note=HANDOFF["note"],
        from_party=ev.V1.Party.model_validate(HANDOFF["from_party"]),
        to_party=ev.V1.Party.model_validate(HANDOFF["to_party"]),
    )
    delivered = ev.V1.DeliveryConfirmed(
        convoy_id="c1",
        recipient_id="kharkiv",
        origin_id="lille",
        carrier_id="lille",
        confirmed_by=ev.V1.ConfirmedBy.model_validate(RECEIVER),
        document=None,
        lines=[
            ev.DeliveredLine(
                manifest_line_id="m1",
                pledge_id="chu",
                line_id="l1",
                item="medicines",
                unit="boxes",
                loaded="100",
                received="100",
                damaged="0",
                short="0",
                lost="0",
                correlation_id=None,
            )
        ],
    )
    return {
        ev.CONVOY_PLANNED: ev.payload(planned),
        ev.CUSTODY_HANDED_OFF: ev.payload(handoff),
        ev.DELIVERY_CONFIRMED: ev.payload(delivered),
    }


async def test_seal_v1_turns_a_clear_payload_into_its_sealed_version_of_the_same_people(
    story: ShipmentsApi,
) -> None:
    subjects = await _subjects(story)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(story.url)
    try:
        async with conn.transaction():
            for event_type, v1 in _v1_payloads().items():
                v2 = await personal.seal_v1(conn, event_type, v1, now=now)
                assert v2 is not None, event_type
                ev.SCHEMAS[event_type].model_validate(v2)  # the version 2 contract
                text = json.dumps(v2, ensure_ascii=False)
                assert not [p for p in PEOPLE if p in text], event_type
                assert await personal.seal_v1(conn, event_type, v2, now=now) is None
                # everything but the persons (and a road entry's digest over them) as it was;
                # opened, the persons as they were
                opened = await privacy.reveal(conn, v2)
                assert _clear({**opened, "entry_sha256": None}) == _clear(
                    {**v1, "entry_sha256": None}
                ), event_type
                # the same people as the organisations that recorded them: the same subjects
                found = privacy.subjects_in(v2)
                assert found <= set(subjects.values()) and found, event_type
            # a payload with no person in clear, or of a type without persons: nothing to do
            dispatched = {
                "convoy_id": "c1",
                "entry_id": "d",
                "entry_sha256": "0" * 64,
                "manifest_lines": 1,
                "weight_kg": "600",
                "custody": {"organisation_id": "lille"},
            }
            assert await personal.seal_v1(conn, ev.CONVOY_DISPATCHED, dispatched, now=now) is None
            checkpoint = {"convoy_id": "c1", "entry_id": "k", "place": "Lviv"}
            assert await personal.seal_v1(conn, ev.CHECKPOINT_RECORDED, checkpoint, now=now) is None
    finally:
        await conn.close()


async def test_version_1_events_with_people_in_clear_still_fold_and_show(
    api: ShipmentsApi,
) -> None:
    """A convoy planned before persons were sealed: its drivers show to the carrier and the
    recipient as they were recorded, withheld from the origin."""
    v1 = ev.V1.ConvoyPlanned.model_validate(
        {
            **{k: v for k, v in PLAN.items() if k != "occurred_at"},
            "convoy_id": "old",
            "carrier_id": "transports-nord",
        }
    )
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            await proj.record(
                conn,
                projections.ALL,
                stream_type=ev.STREAM_CONVOY,
                stream_id="old",
                expected_version=0,
                events=[NewEvent(ev.CONVOY_PLANNED, ev.payload(v1), schema_version=1)],
                metadata=Metadata(actor="before-issue-20"),
                now=datetime.now(UTC),
            )
    finally:
        await conn.close()
    for who in (("transports-nord", Role.MEMBER), RECIPIENT):
        convoy = (await _get(api, who, "/v1/convoys/old")).json()
        assert [d["name"] for d in convoy["drivers"]] == [KARIM, SOPHIE]
        timeline = (await _get(api, who, "/v1/convoys/old/timeline")).text
        assert KARIM in timeline
    convoy = (await _get(api, CARRIER, "/v1/convoys/old")).json()  # Lille: only the origin here
    assert {d["name"] for d in convoy["drivers"]} == {"(withheld)"}
    assert KARIM not in (await _get(api, CARRIER, "/v1/convoys/old/timeline")).text


async def test_an_organisation_finds_the_people_it_recorded_and_no_others(
    story: ShipmentsApi,
) -> None:
    subjects = await _subjects(story)

    async def find(who: tuple[str, Role], name: str) -> list[str]:
        response = await story.client.post(
            "/v1/privacy/subjects/search", json={"name": name}, headers=await story.as_(*who)
        )
        assert response.status_code == 200, response.text
        return [s["subject_id"] for s in response.json()["items"]]

    assert await find(CARRIER, KARIM) == [subjects[KARIM]]
    assert await find(CARRIER, ESCORT["name"]) == [subjects[ESCORT["name"]]]
    assert await find(RECIPIENT, RECEIVER["name"]) == [subjects[RECEIVER["name"]]]
    assert await find(RECIPIENT, KARIM) == []  # Lille's driver, not Kharkiv's record
    assert await find(("leeds", Role.MEMBER), RECEIVER["name"]) == []


async def test_an_entry_sent_again_is_recognised_by_its_people_and_never_records_them_anew(
    story: ShipmentsApi,
) -> None:
    api = story
    events, subjects = await api.count(), await api.count("privacy_subjects")
    again = await api.entries("c1", *MEDICINES.entries, who=CARRIER)
    assert again.status_code == 200, again.text
    assert again.json()["already_recorded"] == len(MEDICINES.entries)
    # the same entry id with another person: other content, refused
    other = {**HANDOFF, "to_party": {**HANDOFF["to_party"], "person": {"name": "Ihor Petrenko"}}}
    assert_problem(await api.entries("c1", other, who=CARRIER), 409, "entry-id-reused")
    # once the escort is erased, a device sending the entry again is answered as before, and
    # their name is not recorded again (no new subject: nothing links it back)
    escort = (await _subjects(api))[ESCORT["name"]]
    assert (await _erase(api, escort, CARRIER)).status_code == 200
    again = await api.entries("c1", *MEDICINES.entries, who=CARRIER)
    assert again.status_code == 200, again.text
    assert again.json()["already_recorded"] == len(MEDICINES.entries)
    assert await api.count("privacy_subjects") == subjects
    assert await api.count() == events + 1  # the erasure's event, nothing else
    found = await api.client.post(
        "/v1/privacy/subjects/search",
        json={"name": ESCORT["name"]},
        headers=await api.as_(*CARRIER),
    )
    assert found.status_code == 200 and found.json()["items"] == []


OldEntries = tuple[dict[str, Any], dict[str, Any], Any, Any]


async def _old_log(api: ShipmentsApi) -> OldEntries:
    """Convoy `old` as version 1 recorded it, people in clear: planned, dispatched with Karim
    holding the goods, handed off to the escort. Returns the dispatch and hand-off entries as
    sent and their commands."""
    dispatch = {
        "entry_id": "old-d",
        "kind": "dispatch",
        "occurred_at": "2022-06-14T06:20:00+02:00",
        "custody": {"organisation_id": "lille", "person": {"name": KARIM, "role": "driver"}},
    }
    sent = requests.DispatchIn.model_validate(dispatch).command()
    handoff = {**HANDOFF, "entry_id": "old-h"}
    handed = requests.CustodyHandoffIn.model_validate(handoff).command()
    plan = {k: v for k, v in PLAN.items() if k != "occurred_at"}
    old = [
        (ev.CONVOY_PLANNED, ev.V1.ConvoyPlanned.model_validate({**plan, "convoy_id": "old"})),
        (
            ev.CONVOY_DISPATCHED,
            ev.V1.ConvoyDispatched.model_validate(
                {
                    "convoy_id": "old",
                    "entry_id": sent.entry_id,
                    "entry_sha256": sent.digest,  # as the old code recorded it: names in clear
                    "manifest_lines": 0,
                    "weight_kg": "0",
                    **sent.details,
                }
            ),
        ),
        (
            ev.CUSTODY_HANDED_OFF,
            ev.V1.CustodyHandedOff.model_validate(
                {
                    "convoy_id": "old",
                    "entry_id": handed.entry_id,
                    "entry_sha256": handed.digest,
                    **handed.details,
                }
            ),
        ),
    ]
    occurred = {
        ev.CONVOY_PLANNED: datetime.fromisoformat(PLAN["occurred_at"]),
        ev.CONVOY_DISPATCHED: sent.occurred_at,
        ev.CUSTODY_HANDED_OFF: handed.occurred_at,
    }
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            await proj.record(
                conn,
                projections.ALL,
                stream_type=ev.STREAM_CONVOY,
                stream_id="old",
                expected_version=0,
                events=[
                    NewEvent(t, ev.payload(m), occurred_at=occurred[t], schema_version=1)
                    for t, m in old
                ],
                metadata=Metadata(actor="before-issue-20", organisation="lille"),
                now=datetime.now(UTC),
            )
    finally:
        await conn.close()
    return dispatch, handoff, sent, handed


async def test_an_old_log_naming_people_in_clear_is_sealed_by_the_migration_with_seal_v1(
    api: ShipmentsApi,
) -> None:
    """Events written before persons were sealed (version 1), rewritten in place by
    shared/privacy_migration.py through seal_v1: the people nowhere in clear, the log still
    verifies against the signed statement, the views show them to whom may see them, and a
    road entry re-sent as the device first sent it is still recognised."""
    dispatch, handoff, _, _ = await _old_log(api)
    signer = signing.Signer.generate()
    conn = await asyncpg.connect(api.url)
    try:
        await seal_everything(conn)
        assert (await _in_clear(api.url, KARIM)).keys() >= {"events", "convoys"}
        report = await privacy_migration.migrate(
            conn,
            service="shipments",
            signer=signer,
            seal_v1=personal.seal_v1,
            now=datetime.now(UTC),
            projections=projections.ALL,
        )
        assert report.rewritten == 3, report
        await seal_everything(conn)  # the signed statement naming the rewrites
        pins = KeyRing.pinned({"shipments": [signer.public_key]})
        verdict = await sealer.verify(conn, service="shipments", keys=pins)
        assert verdict.intact, verdict
        versions = await conn.fetch(
            "SELECT DISTINCT schema_version FROM events WHERE stream_id = 'convoy-old'"
        )
        assert [r[0] for r in versions] == [2]
    finally:
        await conn.close()
    for value in PEOPLE[:3]:
        assert await _in_clear(api.url, value) == {}, value
    convoy = (await _get(api, RECIPIENT, "/v1/convoys/old")).json()
    assert [d["name"] for d in convoy["drivers"]] == [KARIM, SOPHIE]
    assert convoy["custody"]["person"]["name"] == ESCORT["name"]
    timeline = (await _get(api, RECIPIENT, "/v1/convoys/old/timeline")).text
    assert KARIM in timeline and ESCORT["name"] in timeline
    again = await api.entries("old", dispatch, handoff, who=CARRIER)
    assert again.status_code == 200, again.text
    assert again.json()["already_recorded"] == 2


# -- the review's findings (names confirmed by re-sending, clear-name digests, who records) --

ORIGIN = ("lille", Role.LOGISTICS)  # of a convoy another organisation carries
CARRIED_BY = ("transports-nord", Role.LOGISTICS)
DISPATCH = next(e for e in MEDICINES.entries if e["kind"] == "dispatch")


async def _carried(api: ShipmentsApi, who: tuple[str, Role] = CARRIED_BY) -> None:
    """c2: Lille to Kharkiv carried by Transports du Nord, dispatched, the escort taking over
    on the road, the entries recorded by `who`."""
    await api.pledge_line(
        pledge_id="chu", donor_id="chu-lille", unit="boxes", quantity="100", weight_kg="600"
    )
    plan = {**PLAN, "convoy_id": "c2", "carrier_id": "transports-nord"}
    planned = await api.client.post("/v1/convoys", json=plan, headers=await api.as_(*CARRIED_BY))
    assert planned.status_code == 201, planned.text
    loaded = await api.load("c2", manifest_line_id="m1", pledge_id="chu", quantity="100")
    assert loaded.status_code == 201, loaded.text
    road = await api.entries("c2", DISPATCH, HANDOFF, who=who)
    assert road.status_code == 200, road.text


def _handoff_by(name: str) -> dict[str, Any]:
    to = HANDOFF["to_party"]
    return {**HANDOFF, "to_party": {**to, "person": {**to["person"], "name": name}}}


async def test_who_may_not_see_people_cannot_confirm_a_name_by_sending_an_entry_again(
    api: ShipmentsApi,
) -> None:
    await _carried(api)
    events, subjects = await api.count(), await api.count("privacy_subjects")
    right = await api.entries("c2", _handoff_by(ESCORT["name"]), who=ORIGIN)
    wrong = await api.entries("c2", _handoff_by("Ihor Petrenko"), who=ORIGIN)
    # the origin does not see people: a right and a wrong guess are answered alike
    assert (right.status_code, right.json()) == (wrong.status_code, wrong.json())
    assert right.status_code == 200 and right.json()["already_recorded"] == 1
    assert await api.count() == events  # nothing recorded
    assert await api.count("privacy_subjects") == subjects  # nobody recorded
    # who sees people still has the other person refused (the same id, other content)
    again = await api.entries("c2", _handoff_by(ESCORT["name"]), who=CARRIED_BY)
    assert again.status_code == 200 and again.json()["already_recorded"] == 1
    refused = await api.entries("c2", _handoff_by("Ihor Petrenko"), who=CARRIED_BY)
    assert_problem(refused, 409, "entry-id-reused")
    assert await api.count() == events


async def test_seal_v1_computes_an_old_entrys_digest_again_over_the_subject_not_the_name(
    api: ShipmentsApi,
) -> None:
    """Version 1 digested a road entry with its persons in clear, and every reader of the
    timeline sees the digest: migrated, it is the digest a new entry naming the same sealed
    person has, and the entry sent again is still recognised."""
    dispatch, handoff, sent, handed = await _old_log(api)
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            v1 = json.loads(
                await conn.fetchval(
                    "SELECT data FROM events WHERE event_type = $1", ev.CUSTODY_HANDED_OFF
                )
            )
            assert v1["entry_sha256"] == handed.digest  # over the names in clear
            v2 = await personal.seal_v1(conn, ev.CUSTODY_HANDED_OFF, v1, now=datetime.now(UTC))
        assert v2 is not None
        person = v2["to_party"]["person"]
        assert privacy.is_sealed(person)
        new = requests.CustodyHandoffIn.model_validate(handoff).command()
        new_digest = type(new)(
            entry_id=new.entry_id,
            kind=new.kind,
            occurred_at=new.occurred_at,
            details={**new.details, "to_party": {**new.details["to_party"], "person": person}},
        ).digest
        assert v2["entry_sha256"] == new_digest
        assert v2["entry_sha256"] != handed.digest
        # the whole log migrated: no digest over a name left, re-sent entries still recognised
        await seal_everything(conn)
        report = await privacy_migration.migrate(
            conn,
            service="shipments",
            signer=signing.Signer.generate(),
            seal_v1=personal.seal_v1,
            now=datetime.now(UTC),
            projections=projections.ALL,
        )
        assert report.rewritten == 3, report
        digests = {
            r["event_type"]: r["d"]
            for r in await conn.fetch(
                "SELECT event_type, data ->> 'entry_sha256' AS d FROM events"
                " WHERE stream_id = 'convoy-old' AND data ->> 'entry_sha256' IS NOT NULL"
            )
        }
    finally:
        await conn.close()
    assert digests[ev.CUSTODY_HANDED_OFF] == new_digest
    assert digests[ev.CONVOY_DISPATCHED] != sent.digest
    timeline = (await _get(api, RECIPIENT, "/v1/convoys/old/timeline")).text
    assert new_digest in timeline
    assert handed.digest not in timeline and sent.digest not in timeline
    events = await api.count()
    again = await api.entries("old", dispatch, handoff, who=CARRIER)
    assert again.status_code == 200, again.text
    assert again.json()["already_recorded"] == 2
    assert await api.count() == events
    # another person under the same entry id is still other content
    other = {**_handoff_by("Ihor Petrenko"), "entry_id": handoff["entry_id"]}
    refused = await api.entries("old", other, who=CARRIER)
    assert_problem(refused, 409, "entry-id-reused")


async def _subject_ids(api: ShipmentsApi, convoy_id: str) -> dict[str, str]:
    convoy = (await _get(api, AUDITOR, f"/v1/convoys/{convoy_id}")).json()
    out = {d["name"]: d["subject_id"] for d in convoy["drivers"]}
    person = (convoy["custody"] or {}).get("person")
    if person:
        out[person["name"]] = person["subject_id"]
    return out


async def _search(api: ShipmentsApi, who: tuple[str, Role], name: str) -> list[str]:
    response = await api.client.post(
        "/v1/privacy/subjects/search", json={"name": name}, headers=await api.as_(*who)
    )
    assert response.status_code == 200, response.text
    return [s["subject_id"] for s in response.json()["items"]]


async def test_the_organisation_whose_key_typed_a_person_records_them_and_answers_for_them(
    api: ShipmentsApi,
) -> None:
    """Lille, the origin, plans a convoy Transports du Nord carries, with its drivers: Lille
    recorded them, finds, exports and erases them; to the carrier they do not exist (404).
    Kharkiv's logistics key names the escort taking the goods over: Kharkiv's person."""
    await api.pledge_line(
        pledge_id="chu", donor_id="chu-lille", unit="boxes", quantity="100", weight_kg="600"
    )
    plan = {**PLAN, "convoy_id": "c2", "carrier_id": "transports-nord"}
    planned = await api.client.post("/v1/convoys", json=plan, headers=await api.as_(*ORIGIN))
    assert planned.status_code == 201, planned.text
    loaded = await api.load("c2", manifest_line_id="m1", pledge_id="chu", quantity="100")
    assert loaded.status_code == 201, loaded.text
    assert (await api.entries("c2", DISPATCH, who=CARRIED_BY)).status_code == 200
    handed = await api.entries("c2", HANDOFF, who=("kharkiv", Role.LOGISTICS))
    assert handed.status_code == 200, handed.text
    subjects = await _subject_ids(api, "c2")
    karim, escort = subjects[KARIM], subjects[ESCORT["name"]]

    assert await _search(api, ORIGIN, KARIM) == [karim]
    assert await _search(api, CARRIED_BY, KARIM) == []
    assert await _search(api, ("kharkiv", Role.LOGISTICS), ESCORT["name"]) == [escort]
    assert await _search(api, CARRIED_BY, ESCORT["name"]) == []
    for who in (CARRIED_BY, ("transports-nord", Role.MEMBER)):
        exported = await api.client.get(
            f"/v1/privacy/subjects/{karim}", headers=await api.as_(*who)
        )
        assert_problem(exported, 404)
        assert_problem(await _erase(api, karim, who), 404)
    assert_problem(await _erase(api, escort, CARRIED_BY), 404)
    export = (await _get(api, ORIGIN, f"/v1/privacy/subjects/{karim}")).json()
    assert export["organisation_id"] == "lille"
    assert [(o["event_type"], o["stream_id"]) for o in export["occurrences"]] == [
        (ev.CONVOY_PLANNED, "convoy-c2")
    ]
    assert export["occurrences"][0]["persons"][0]["name"] == KARIM
    export = (await _get(api, ("kharkiv", Role.MEMBER), f"/v1/privacy/subjects/{escort}")).json()
    assert export["organisation_id"] == "kharkiv"
    erased = await _erase(api, karim, ORIGIN)
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased_by"] == "lille"

    # the escort sent again, by the carrier (who sees people): recognised as Kharkiv's person
    events = await api.count()
    again = await api.entries("c2", HANDOFF, who=CARRIED_BY)
    assert again.status_code == 200 and again.json()["already_recorded"] == 1, again.text
    refused = await api.entries("c2", _handoff_by("Ihor Petrenko"), who=CARRIED_BY)
    assert_problem(refused, 409, "entry-id-reused")
    assert await api.count() == events

    # a registry administrator acting for others records drivers as the carrier's
    admin = ("leeds", Role.REGISTRY_ADMIN)
    plan = {**PLAN, "convoy_id": "c3", "carrier_id": "transports-nord", "drivers": [DRIVERS[1]]}
    planned = await api.client.post("/v1/convoys", json=plan, headers=await api.as_(*admin))
    assert planned.status_code == 201, planned.text
    sophie = (await _subject_ids(api, "c3"))[SOPHIE]
    assert await _search(api, CARRIED_BY, SOPHIE) == [sophie]
    assert sophie not in await _search(api, ORIGIN, SOPHIE)  # Lille's Sophie is c2's
