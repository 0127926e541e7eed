"""An organisation's contacts are personal data (issue 20, services/registry/privacy.py): sealed
in the log and the read model, shown to the organisation itself and registry administrators,
erasable for good (the log still verifies), exported on request, erased after the retention
period once replaced. Real PostgreSQL, the registry app over ASGI.

The people are the demo's (services/shipments/demo/data.py): Olha Kravchenko, head of Kharkiv's
municipal medical warehouse, and Andrii Melnyk, the escort team leader.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.registry import events as ev
from services.registry import privacy as personal
from services.registry import projections
from shared import privacy, privacy_subjects
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.projections import project, rebuild
from shared.testing import seal_everything
from tests.registry.conftest import KHARKIV, LILLE, RegistryApi, assert_problem

OLHA = {
    "role": "head of the municipal medical warehouse",
    "name": "Olha Kravchenko",
    "email": "o.kravchenko@city.kharkiv.example",
}
ANDRII = {"role": "escort team leader", "name": "Andrii Melnyk", "email": None}
# what must appear nowhere in clear once sealed (and nowhere readable once erased)
PERSONAL_VALUES = ("Kravchenko", "o.kravchenko@")


async def _texts(url: str, sql: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _in_clear(url: str, value: str) -> dict[str, int]:
    """Where `value` lies in clear: events, the read model, stored idempotent answers."""
    found = {}
    for table, sql in {
        "events": "SELECT count(*) FROM events WHERE data::text LIKE $1",
        "organisations": "SELECT count(*) FROM organisations o WHERE o::text LIKE $1",
        "idempotency_keys": "SELECT count(*) FROM idempotency_keys i WHERE i::text LIKE $1",
        "privacy_occurrences": "SELECT count(*) FROM privacy_occurrences p WHERE p::text LIKE $1",
    }.items():
        conn = await asyncpg.connect(url)
        try:
            found[table] = int(await conn.fetchval(sql, f"%{value}%"))
        finally:
            await conn.close()
    return {k: v for k, v in found.items() if v}


async def _kharkiv_with(api: RegistryApi, *contacts: dict[str, Any]) -> None:
    await api.register(LILLE, {**KHARKIV, "contacts": list(contacts)})


async def _get(api: RegistryApi, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = await api.client.get("/v1/organisations/kharkiv", headers=headers, params=params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_contacts_are_sealed_in_the_log_and_read_model_and_shown_only_to_whom_may(
    api: RegistryApi,
) -> None:
    await _kharkiv_with(api, OLHA, ANDRII)
    for value in PERSONAL_VALUES:
        assert await _in_clear(api.url, value) == {}, value
    [changed] = await api.events(ev.ORGANISATION_CONTACTS_CHANGED)
    assert [c["role"] for c in changed["contacts"]] == [OLHA["role"], ANDRII["role"]]
    assert [c["personal"] for c in changed["contacts"]] == [["email", "name"], ["name"]]
    ev.OrganisationContactsChanged.model_validate(changed)
    versions = await _texts(
        api.url,
        "SELECT schema_version::text FROM events"
        " WHERE event_type = 'registry.organisation-contacts-changed'",
    )
    assert versions == ["2"]

    kharkiv = await api.as_("kharkiv", Role.MEMBER)
    for headers in (kharkiv, api.as_admin):
        got = await _get(api, headers)
        assert [(c["name"], c["email"], c["role"], c["erased"]) for c in got["contacts"]] == [
            (OLHA["name"], OLHA["email"], OLHA["role"], False),
            (ANDRII["name"], None, ANDRII["role"], False),
        ]
        then = await _get(api, headers, as_of=datetime.now(UTC).isoformat())
        assert then["contacts"] == got["contacts"]
    for headers in (await api.as_("lille", Role.MEMBER), await api.as_("audit", Role.AUDITOR)):
        got = await _get(api, headers)
        assert "contacts" not in got
        assert "contacts" not in await _get(api, headers, as_of=datetime.now(UTC).isoformat())


async def test_the_same_people_again_change_nothing_and_a_new_one_is_a_new_subject(
    api: RegistryApi,
) -> None:
    await _kharkiv_with(api, OLHA)
    kharkiv = await api.as_("kharkiv", Role.MEMBER)
    first = (await _get(api, kharkiv))["contacts"][0]["subject_id"]
    same = await api.client.put(
        "/v1/organisations/kharkiv/contacts", json={"contacts": [OLHA]}, headers=kharkiv
    )
    assert same.status_code == 200 and same.json()["version"] == 2, same.text
    both = await api.client.put(
        "/v1/organisations/kharkiv/contacts", json={"contacts": [ANDRII, OLHA]}, headers=kharkiv
    )
    assert both.status_code == 200 and both.json()["version"] == 3, both.text
    shown = (await _get(api, kharkiv))["contacts"]
    assert [c["name"] for c in shown] == [ANDRII["name"], OLHA["name"]]
    assert shown[1]["subject_id"] == first, "the same person of the same organisation"
    assert shown[0]["subject_id"] != first
    for value in PERSONAL_VALUES:
        assert await _in_clear(api.url, value) == {}, value


async def test_erasure_by_the_recording_organisation_shows_erased_everywhere_and_verifies(
    api: RegistryApi,
) -> None:
    await _kharkiv_with(api, OLHA, ANDRII)
    kharkiv = await api.as_("kharkiv", Role.MEMBER)
    lille = await api.as_("lille", Role.MEMBER)
    before_erasure = datetime.now(UTC).isoformat()
    olha = (await _get(api, kharkiv))["contacts"][0]["subject_id"]

    exported = await api.client.get(f"/v1/privacy/subjects/{olha}", headers=kharkiv)
    assert exported.status_code == 200, exported.text
    [occurrence] = exported.json()["occurrences"]
    assert occurrence["event_type"] == ev.ORGANISATION_CONTACTS_CHANGED
    assert occurrence["stream_id"] == "organisation-kharkiv"
    assert occurrence["persons"][0]["name"] == OLHA["name"]
    assert occurrence["persons"][0]["email"] == OLHA["email"]
    assert_problem(await api.client.get(f"/v1/privacy/subjects/{olha}", headers=lille), 404)

    refused = await api.client.post(
        f"/v1/privacy/subjects/{olha}/erasure", json={"legal_basis": "gdpr-art-17"}, headers=lille
    )
    assert_problem(refused, 404)
    assert (await _get(api, kharkiv))["contacts"][0]["name"] == OLHA["name"]
    erased = await api.client.post(
        f"/v1/privacy/subjects/{olha}/erasure", json={"legal_basis": "gdpr-art-17"}, headers=kharkiv
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"] and erased.json()["erased_by"] == "kharkiv"

    def check(contacts: list[dict[str, Any]]) -> None:
        assert contacts[0] == {
            "role": OLHA["role"],
            "name": privacy.ERASED,
            "email": privacy.ERASED,
            "subject_id": olha,
            "erased": True,
        }
        assert contacts[1]["name"] == ANDRII["name"] and not contacts[1]["erased"]

    for headers in (kharkiv, api.as_admin):
        check((await _get(api, headers))["contacts"])
        check((await _get(api, headers, as_of=datetime.now(UTC).isoformat()))["contacts"])
        check((await _get(api, headers, as_of=before_erasure))["contacts"])
    after = (await api.client.get(f"/v1/privacy/subjects/{olha}", headers=kharkiv)).json()
    assert after["erased"] and after["legal_basis"] == "gdpr-art-17"
    [occurrence] = after["occurrences"]
    assert occurrence["persons"][0]["name"] == privacy.ERASED
    assert OLHA["name"] not in json.dumps(after)

    conn = await asyncpg.connect(api.url)
    try:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE event_type = $1", privacy_subjects.SUBJECT_ERASED
            )
            == 1
        )
        await seal_everything(conn)
        assert await rebuild(conn, projections.ALL) == await api.count()
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM privacy_occurrences WHERE subject_id = $1", olha
            )
            == 1
        ), "rebuild fills the occurrences again"
    finally:
        await conn.close()
    check((await _get(api, kharkiv))["contacts"])
    auditor = await api.as_("audit", Role.AUDITOR)
    verdict = (await api.client.get("/v1/audit/verify", headers=auditor)).json()
    assert verdict["intact"] and verdict["head_position"] == await api.count(), verdict

    # the name leads nowhere any more; the other contact still can be found
    search = await api.client.post(
        "/v1/privacy/subjects/search", json={"name": OLHA["name"]}, headers=kharkiv
    )
    assert search.status_code == 200 and search.json()["items"] == []
    search = await api.client.post(
        "/v1/privacy/subjects/search", json={"name": ANDRII["name"]}, headers=kharkiv
    )
    assert [s["subject_id"] for s in search.json()["items"]] != []


async def test_retention_erases_a_replaced_contact_only_after_the_period(
    api: RegistryApi,
) -> None:
    await _kharkiv_with(api, OLHA)
    kharkiv = await api.as_("kharkiv", Role.MEMBER)
    olha = (await _get(api, kharkiv))["contacts"][0]["subject_id"]
    replaced = await api.client.put(
        "/v1/organisations/kharkiv/contacts", json={"contacts": [ANDRII]}, headers=kharkiv
    )
    assert replaced.status_code == 200, replaced.text
    andrii = (await _get(api, kharkiv))["contacts"][0]["subject_id"]
    now = datetime.now(UTC)
    retention = timedelta(days=730)
    conn = await asyncpg.connect(api.url)
    try:

        async def due(at: datetime) -> list[str]:
            rows = await conn.fetch(personal.RETENTION_DUE, at - retention, 100)
            return [r["subject_id"] for r in rows]

        assert await due(now) == [], "replaced today: kept for the period"
        assert await due(now + retention + timedelta(days=1)) == [olha], "Andrii is current"
        erased = await privacy_subjects.erase_expired(
            conn,
            due_sql=personal.RETENTION_DUE,
            retention=retention,
            now=now + retention + timedelta(days=1),
            metadata=Metadata(actor="registry-worker"),
        )
        assert erased == [olha]
        assert await due(now + retention + timedelta(days=2)) == [], "erased once"
    finally:
        await conn.close()
    shown = (await _get(api, api.as_admin, as_of=datetime.now(UTC).isoformat()))["contacts"]
    assert shown[0]["subject_id"] == andrii and shown[0]["name"] == ANDRII["name"]
    exported = (await api.client.get(f"/v1/privacy/subjects/{olha}", headers=kharkiv)).json()
    assert exported["legal_basis"] == "retention" and exported["erased_by"] == "retention"
    assert exported["occurrences"][0]["persons"][0]["name"] == privacy.ERASED


async def test_a_version_1_event_with_clear_contacts_still_folds_and_seals_on_migration(
    api: RegistryApi,
) -> None:
    await api.register(KHARKIV)
    v1 = {"organisation_id": "kharkiv", "contacts": [OLHA, ANDRII]}
    ev.PREVIOUS[ev.ORGANISATION_CONTACTS_CHANGED, 1].model_validate(v1)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            recorded = await PostgresEventStore(conn).append(
                stream_type=ev.STREAM_ORGANISATION,
                stream_id="organisation-kharkiv",
                expected_version=1,
                events=[NewEvent(ev.ORGANISATION_CONTACTS_CHANGED, v1, occurred_at=now)],
                metadata=Metadata(actor="before-issue-20"),
                now=now,
            )
            await project(conn, projections.ALL, recorded)
        shown = (await _get(api, api.as_admin))["contacts"]
        assert [(c["name"], c["subject_id"]) for c in shown] == [
            (OLHA["name"], None),
            (ANDRII["name"], None),
        ], "an older log's contacts, in clear, are shown as they are"

        sealed = await personal.seal_v1(conn, ev.ORGANISATION_CONTACTS_CHANGED, v1, now=now)
        assert sealed is not None
        ev.OrganisationContactsChanged.model_validate(sealed)
        assert not any(v in json.dumps(sealed) for v in PERSONAL_VALUES)
        opened = await privacy.reveal(conn, sealed)
        assert [{k: c.get(k) for k in ("role", "name", "email")} for c in opened["contacts"]] == [
            OLHA,
            ANDRII,
        ]
        assert (
            await personal.seal_v1(conn, ev.ORGANISATION_CONTACTS_CHANGED, sealed, now=now) is None
        )
        assert await personal.seal_v1(conn, ev.ORGANISATION_RENAMED, v1, now=now) is None
        # sealed again by the same organisation: the same subjects as the API would use
        found = await privacy_subjects.find(conn, organisation="kharkiv", name=OLHA["name"])
        assert [s.subject_id for s in found] == [sealed["contacts"][0]["subject_id"]]
    finally:
        await conn.close()
