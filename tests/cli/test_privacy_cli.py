"""`twinaid privacy find|export|erase` against the running APIs, with the demo's real people
recorded through them: a registry contact and a need's contact in pledges. Each test records
people of its own (erasing one never changes what another test finds)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.registry import events as registry_events
from shared import auth, sealer
from shared import db as dbmod
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.keys import KeyRing
from shared.settings import SERVICES, Settings
from shared.testing import seal_everything
from tests.cli.conftest import Stack, twinaid

# the command's behaviour, not SQL that differs between PostgreSQL versions: one CI pass
pytestmark = pytest.mark.once

SUBJECT = re.compile(r"^(registry|pledges|shipments)-[0-9a-f]{32}$")
OLHA = {
    "name": "Olha Kravchenko",
    "role": "head of the municipal medical warehouse",
    "email": "o.kravchenko@kharkiv.example",
}
OLHA_PHONE = "+380 57 725 11 00"


@dataclass(frozen=True)
class Keys:
    """Keys valid in every service (each service checks its own key table)."""

    admin: str
    kharkiv: str
    lille: str
    auditor: str


def _everywhere(stack: Stack, organisation: str, roles: list[Role]) -> str:
    token = auth.new_key()[1]

    async def issue() -> None:
        for service in SERVICES:
            conn = await asyncpg.connect(stack.databases[service])
            try:
                await auth.issue(conn, organisation=organisation, roles=roles, token=token)
            finally:
                await conn.close()

    asyncio.run(issue())
    return token


@pytest.fixture(scope="module")
def keys(stack: Stack) -> Keys:
    return Keys(
        admin=_everywhere(stack, "twinaid", [Role.REGISTRY_ADMIN]),
        kharkiv=_everywhere(stack, "kharkiv", [Role.MEMBER]),
        lille=_everywhere(stack, "lille", [Role.MEMBER]),
        auditor=stack.auditor,
    )


@pytest.fixture(autouse=True)
def sealed_after(stack: Stack) -> Iterator[None]:
    """Every event these tests wrote gets its position before the next test (no worker runs
    here; the package's other tests read the logs through the feeds, which show sealed events
    only)."""
    yield

    async def seal() -> None:
        for url in stack.databases.values():
            conn = await asyncpg.connect(url)
            try:
                await seal_everything(conn)
            finally:
                await conn.close()

    asyncio.run(seal())


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _call(
    client: httpx.Client, method: str, url: str, key: str, body: Any = None
) -> dict[str, Any]:
    response = client.request(method, url, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def record_contacts(
    api: httpx.Client, stack: Stack, key: str, organisation: str, contacts: list[dict[str, Any]]
) -> None:
    """The organisation's contacts in the registry (replacing those it had)."""
    _call(
        api,
        "PUT",
        f"{stack.urls['registry']}/v1/organisations/{organisation}/contacts",
        key,
        {"contacts": contacts},
    )


def record_need_contact(
    api: httpx.Client, stack: Stack, key: str, need_id: str, contact: dict[str, Any]
) -> None:
    """A need of the key's organisation in pledges, with its contact."""
    need = {
        "need_id": need_id,
        "kind": "item",
        "category": "medicines",
        "description": "Insulin and dressings for the municipal medical warehouse",
        "quantity": "40",
        "unit": "boxes",
        "priority": "high",
        "contact": contact,
    }
    _call(api, "POST", f"{stack.urls['pledges']}/v1/needs", key, need)


def as_json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> Any:
    ran = twinaid(capsys, *argv)
    assert ran.code == code, ran.err
    return json.loads(ran.out)


def one_line(err: str) -> str:
    assert err.startswith("twinaid") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def verified(api: httpx.Client, stack: Stack, key: str, *services: str) -> dict[str, bool]:
    """Whether the logs of `services` verify, once their erasure events are sealed (the
    package's other tests leave the shipments log signed by a key nobody pinned)."""

    async def seal() -> None:
        for service in services:
            conn = await asyncpg.connect(stack.databases[service])
            try:
                await seal_everything(conn)
            finally:
                await conn.close()

    asyncio.run(seal())
    return {
        s: _call(api, "GET", f"{stack.urls[s]}/v1/audit/verify", key)["intact"] for s in services
    }


@pytest.fixture
def urls(stack: Stack, environment: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    return environment


def test_find_and_export_a_person_across_the_services_by_id_or_by_name(
    capsys: pytest.CaptureFixture[str], urls: pytest.MonkeyPatch, stack: Stack, keys: Keys,
    api: httpx.Client,
) -> None:  # fmt: skip
    record_contacts(api, stack, keys.kharkiv, "kharkiv", [OLHA])
    record_need_contact(
        api, stack, keys.kharkiv, "kharkiv-insulin-cli", {**OLHA, "phone": OLHA_PHONE}
    )
    urls.setenv("TWINAID_API_KEY", keys.admin)

    found = as_json(capsys, "privacy", "find", "--name", "Olha Kravchenko", "--json")
    assert isinstance(found, list)
    by_service = {s["service"]: s for s in found}
    assert sorted(by_service) == ["pledges", "registry"]  # shipments holds no Olha
    for service, subject in by_service.items():
        assert SUBJECT.fullmatch(subject["subject_id"])
        assert subject["subject_id"].startswith(f"{service}-")
        assert subject["organisation_id"] == "kharkiv" and subject["erased"] is False
    # the organisation narrows the search; the name is matched as recorded, whatever the case
    narrowed = as_json(
        capsys, "privacy", "find", "--name", "olha  KRAVCHENKO", "--organisation", "kharkiv",
        "--json",
    )  # fmt: skip
    assert {s["subject_id"] for s in narrowed} == {s["subject_id"] for s in found}
    elsewhere = twinaid(
        capsys, "privacy", "find", "--name", "Olha Kravchenko", "--organisation", "lille"
    )
    assert elsewhere.code == 1 and elsewhere.out == ""
    assert one_line(elsewhere.err) == (
        "twinaid: privacy find: no subject recorded under that name in registry, pledges, shipments"
    )
    assert "Olha" not in elsewhere.err  # the name is never printed back
    # text: one line per subject, ids whole
    text = twinaid(capsys, "privacy", "find", "--name", "Olha Kravchenko")
    assert text.code == 0
    lines = text.out.splitlines()
    assert len(lines) == 2
    for line, subject in zip(lines, found, strict=True):
        assert line.split()[:2] == [subject["service"], subject["subject_id"]]
        assert "recorded by kharkiv" in line

    # export by id: the person decrypted, in every event that recorded them
    pledges_id = by_service["pledges"]["subject_id"]
    held = as_json(capsys, "privacy", "export", pledges_id, "--json")
    assert held["subject_id"] == pledges_id and held["service"] == "pledges"
    assert held["erased"] is False and held["organisation_id"] == "kharkiv"
    [occurrence] = held["occurrences"]
    assert occurrence["stream_id"].endswith("kharkiv-insulin-cli")
    [person] = occurrence["persons"]
    assert person["name"] == "Olha Kravchenko" and person["phone"] == OLHA_PHONE
    assert person["email"] == OLHA["email"] and person["role"] == OLHA["role"]
    text = twinaid(capsys, "privacy", "export", pledges_id)
    assert text.code == 0
    assert text.out.startswith(f"{pledges_id}  (pledges, recorded by kharkiv; held)")
    assert occurrence["event_id"] in text.out and "name: Olha Kravchenko" in text.out
    assert f"phone: {OLHA_PHONE}" in text.out

    # export by name: every subject found, across the services, with the key of the
    # organisation that recorded them
    both = as_json(
        capsys, "privacy", "export", "--name", "Olha Kravchenko", "--key", keys.kharkiv, "--json"
    )
    assert [e["subject_id"] for e in both] == [s["subject_id"] for s in found]
    [registry_held] = [e for e in both if e["service"] == "registry"]
    names = {p["name"] for o in registry_held["occurrences"] for p in o["persons"]}
    assert names == {"Olha Kravchenko"}
    # another organisation's key finds nothing and may not export them
    assert as_json(
        capsys, "privacy", "find", "--name", "Olha Kravchenko", "--key", keys.lille, "--json",
        code=1,
    ) == []  # fmt: skip
    ran = twinaid(capsys, "privacy", "export", pledges_id, "--key", keys.lille)
    assert ran.code == 1 and ran.out == ""
    assert one_line(ran.err) == (
        f"twinaid: pledges holds no subject {pledges_id} this key may handle (unknown, or"
        " recorded by another organisation)"
    )


def test_erase_by_id_shows_erased_everywhere_and_the_logs_still_verify(
    capsys: pytest.CaptureFixture[str], urls: pytest.MonkeyPatch, stack: Stack, keys: Keys,
    api: httpx.Client,
) -> None:  # fmt: skip
    karim = {
        "name": "Karim Benali",
        "role": "convoy coordinator",
        "email": "k.benali@lille.example",
    }
    record_contacts(api, stack, keys.lille, "lille", [karim])
    urls.setenv("TWINAID_API_KEY", keys.lille)
    [found] = as_json(capsys, "privacy", "find", "--name", "Karim Benali", "--json")
    subject_id = found["subject_id"]
    assert found["service"] == "registry"

    ran = twinaid(capsys, "privacy", "erase", subject_id, "--basis", "gdpr-art-17")
    assert ran.code == 0, ran.err
    assert ran.out.startswith(f"{subject_id}: erased at ")
    assert "(asked by lille, basis gdpr-art-17); recorded by lille" in ran.out
    # erased: the export shows the fields erased, the subject is no longer found by name
    held = as_json(capsys, "privacy", "export", subject_id, "--json")
    assert held["erased"] is True and held["legal_basis"] == "gdpr-art-17"
    assert held["erased_by"] == "lille"
    persons = [p for o in held["occurrences"] for p in o["persons"]]
    assert persons and all(p["name"] == "(erased)" and p["erased"] is True for p in persons)
    assert all(p["email"] == "(erased)" for p in persons)
    assert "Benali" not in json.dumps(held) and "k.benali" not in json.dumps(held)
    assert karim["role"] in {p["role"] for p in persons}  # a function, not a person: kept
    assert as_json(capsys, "privacy", "find", "--name", "Karim Benali", "--json", code=1) == []
    # the organisation's own view shows the contact erased
    shown = _call(api, "GET", f"{stack.urls['registry']}/v1/organisations/lille", keys.lille)
    assert [c["name"] for c in shown["contacts"]] == ["(erased)"]
    # erasing again answers the first erasure
    again = as_json(capsys, "privacy", "erase", subject_id, "--basis", "other", "--json")
    assert again["erased_at"] == held["erased_at"] and again["legal_basis"] == "gdpr-art-17"
    both = ("registry", "pledges")
    assert verified(api, stack, keys.auditor, *both) == dict.fromkeys(both, True)


def test_erase_by_name_wants_the_organisation_and_yes_for_more_than_one(
    capsys: pytest.CaptureFixture[str], urls: pytest.MonkeyPatch, stack: Stack, keys: Keys,
    api: httpx.Client,
) -> None:  # fmt: skip
    sophie = {"name": "Sophie Lemaire", "role": "driver", "email": "s.lemaire@lille.example"}
    record_contacts(api, stack, keys.lille, "lille", [sophie])
    record_need_contact(
        api, stack, keys.lille, "lille-dressings-cli", {**sophie, "phone": "+33 6 98 76 54 32"}
    )
    urls.setenv("TWINAID_API_KEY", keys.admin)
    found = as_json(capsys, "privacy", "find", "--name", "Sophie Lemaire", "--json")
    assert sorted(s["service"] for s in found) == ["pledges", "registry"]

    ran = twinaid(capsys, "privacy", "erase", "--name", "Sophie Lemaire", "--basis", "gdpr-art-17")
    assert ran.code == 2 and ran.out == ""
    assert "privacy erase --name needs --organisation" in one_line(ran.err)
    ran = twinaid(
        capsys, "privacy", "erase", "--name", "Sophie Lemaire", "--organisation", "lille",
        "--basis", "gdpr-art-17",
    )  # fmt: skip
    assert ran.code == 2 and ran.out == ""
    line = one_line(ran.err)
    assert "2 subjects found under that name" in line and "--yes" in line
    assert "Nothing erased." in line and all(s["subject_id"] in line for s in found)
    # nothing was erased
    still = as_json(capsys, "privacy", "find", "--name", "Sophie Lemaire", "--json")
    assert [s["subject_id"] for s in still] == [s["subject_id"] for s in found]

    erased = as_json(
        capsys, "privacy", "erase", "--name", "Sophie Lemaire", "--organisation", "lille",
        "--basis", "gdpr-art-17", "--yes", "--json",
    )  # fmt: skip
    assert [e["subject_id"] for e in erased] == [s["subject_id"] for s in found]
    assert all(e["erased"] and e["erased_by"] == "twinaid" for e in erased)
    ran = twinaid(
        capsys, "privacy", "erase", "--name", "Sophie Lemaire", "--organisation", "lille",
        "--basis", "gdpr-art-17",
    )  # fmt: skip
    assert ran.code == 1
    assert one_line(ran.err).endswith("no subject recorded under that name in registry,"
                                      " pledges, shipments; nothing erased")  # fmt: skip
    for subject in found:
        held = as_json(capsys, "privacy", "export", subject["subject_id"], "--json")
        assert held["erased"] is True
        assert "Lemaire" not in json.dumps(held) and "98 76" not in json.dumps(held)
    both = ("registry", "pledges")
    assert verified(api, stack, keys.auditor, *both) == dict.fromkeys(both, True)


def test_bad_ids_unknown_subjects_missing_keys_and_arguments_are_one_line(
    capsys: pytest.CaptureFixture[str], urls: pytest.MonkeyPatch, keys: Keys
) -> None:
    unknown = "shipments-" + "0" * 32
    ran = twinaid(capsys, "privacy", "export", unknown, "--key", keys.admin)
    assert ran.code == 1 and ran.out == ""
    assert one_line(ran.err) == (
        f"twinaid: shipments holds no subject {unknown} this key may handle (unknown, or"
        " recorded by another organisation)"
    )
    ran = twinaid(
        capsys, "privacy", "erase", unknown, "--basis", "gdpr-art-17", "--key", keys.admin
    )
    assert ran.code == 1 and f"shipments holds no subject {unknown}" in one_line(ran.err)
    for bad in ("olha", "billing-" + "0" * 32, "shipments-" + "0" * 31):
        ran = twinaid(capsys, "privacy", "export", bad, "--key", keys.admin)
        assert ran.code == 2 and ran.out == ""
        assert one_line(ran.err).startswith(f"twinaid: {bad!r} is not a subject id")
    ran = twinaid(capsys, "privacy", "export", unknown, "--name", "Olha Kravchenko")
    assert ran.code == 2 and "give either a subject id or --name" in one_line(ran.err)
    ran = twinaid(capsys, "privacy", "export", "--key", keys.admin)
    assert ran.code == 2 and "give either a subject id or --name" in one_line(ran.err)
    ran = twinaid(capsys, "privacy", "erase", unknown, "--basis", "because")
    assert ran.code == 2 and "invalid choice: 'because'" in one_line(ran.err)
    ran = twinaid(capsys, "privacy", "find", "--name", "Olha Kravchenko")
    assert ran.code == 1 and "an API key is needed" in one_line(ran.err)
    ran = twinaid(capsys, "privacy", "find", "--name", "Olha Kravchenko", "--key", "twa_a_b")
    assert ran.code == 1 and "refused the API key" in one_line(ran.err)
    ran = twinaid(
        capsys, "privacy", "find", "--name", "x", "--key", keys.admin, "--url", "billing=http://x"
    )
    assert ran.code == 2 and "--url wants SERVICE=URL" in one_line(ran.err)
    # an auditor reads logs, not people
    ran = twinaid(capsys, "privacy", "find", "--name", "Olha Kravchenko", "--key", keys.auditor)
    assert ran.code == 1 and "this API key may not do that" in one_line(ran.err)


async def old_registry_log(url: str) -> None:
    """A registry log written before contacts were sealed: Kharkiv registered, then its
    contacts changed with Olha Kravchenko in clear (version 1)."""
    await dbmod.ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        await dbmod.migrate(
            conn, "registry", dbmod.schema_text("shared"), dbmod.schema_text("services.registry")
        )
        store = PostgresEventStore(conn)
        when = datetime(2022, 3, 1, 9, 0, tzinfo=UTC)
        registered = {"organisation_id": "kharkiv", "name": "Kharkiv", "kind": "municipality"}
        await store.append(
            stream_type="organisation",
            stream_id="organisation-kharkiv",
            expected_version=0,
            events=[
                NewEvent(registry_events.ORGANISATION_REGISTERED, {**registered, "country": "UA"}),
                NewEvent(
                    registry_events.ORGANISATION_CONTACTS_CHANGED,
                    {"organisation_id": "kharkiv", "contacts": [OLHA]},
                    schema_version=1,
                ),
            ],
            metadata=Metadata(actor="registry-admin", organisation="twinaid"),
            now=when,
        )
        await seal_everything(conn)
    finally:
        await conn.close()


async def log_state(url: str) -> tuple[str, str, bool]:
    """(the log's event data, the read model's contacts, whether the log verifies against the
    pinned keys)."""
    conn = await asyncpg.connect(url)
    try:
        logged = await conn.fetchval("SELECT string_agg(data::text, ' ') FROM events")
        shown = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM organisations t")
        await seal_everything(conn)  # the command seals its statement unless a transaction
        # elsewhere on the server is older (the worker would seal it then)
        pins = KeyRing.pinned(Settings().trusted_keys)
        verdict = await sealer.verify(conn, service="registry", keys=pins)
    finally:
        await conn.close()
    return str(logged), str(shown), verdict.intact


async def drop(server: str, url: str) -> None:
    conn = await asyncpg.connect(dbmod.with_database(server, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbmod.database_name(url)}" WITH (FORCE)')
    finally:
        await conn.close()


def test_migrate_seals_the_clear_contacts_of_an_old_log_which_still_verifies(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, stack: Stack,
    tmp_path: Path,
) -> None:  # fmt: skip
    url = dbmod.with_database(stack.server, f"twinaid_old_{uuid.uuid4().hex[:12]}")
    asyncio.run(old_registry_log(url))
    try:
        logged, shown, intact = asyncio.run(log_state(url))
        assert "Olha Kravchenko" in logged and intact  # the old log, in clear
        db = ["--database", f"registry={url}"]
        # without the service's signing key nothing is done
        missing = tmp_path / "nowhere.ed25519"
        ran = twinaid(capsys, *db, "privacy", "migrate", "registry", "--key-file", str(missing))
        assert ran.code == 1 and ran.out == ""
        assert one_line(ran.err).startswith(f"twinaid: no signing key {missing}:")
        assert asyncio.run(log_state(url))[0] == logged

        # signed with the service's key ($SIGNING_KEY_FILE, pinned in TRUSTED_KEYS)
        assert os.environ["SIGNING_KEY_FILE"]
        report = as_json(capsys, *db, "privacy", "migrate", "registry", "--json")
        assert report["service"] == "registry" and report["rewritten"] == 1
        assert report["statement_event_id"] and report["rebuilt"] is not None
        logged, shown, intact = asyncio.run(log_state(url))
        assert intact
        for clear in (OLHA["name"], "Kravchenko", OLHA["email"]):
            assert clear not in logged and clear not in shown
        assert OLHA["role"] in logged  # a function, kept in clear
        # the person is now a subject of the registry, with their own key
        assert report["positions"] == [2]
        again = twinaid(capsys, *db, "privacy", "migrate", "registry")
        assert again.code == 0, again.err
        assert again.out.startswith("registry: nothing to rewrite")
        assert asyncio.run(log_state(url))[2]
    finally:
        asyncio.run(drop(stack.server, url))


async def tamper(url: str) -> None:
    """The clear contact altered in place, past the append-only trigger, as an intruder with
    the database's owner rights could."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute(
                "UPDATE events SET data = replace(data::text, 'Olha', 'Olga')::json"
                " WHERE event_type = $1",
                registry_events.ORGANISATION_CONTACTS_CHANGED,
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()


def test_migrate_refuses_a_log_that_does_not_verify_and_rewrites_nothing(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, stack: Stack
) -> None:
    url = dbmod.with_database(stack.server, f"twinaid_old_{uuid.uuid4().hex[:12]}")
    asyncio.run(old_registry_log(url))
    try:
        asyncio.run(tamper(url))
        logged, _, intact = asyncio.run(log_state(url))
        assert not intact and "Olga Kravchenko" in logged
        ran = twinaid(capsys, "--database", f"registry={url}", "privacy", "migrate", "registry")
        assert ran.code == 1 and ran.out == ""
        line = one_line(ran.err)
        assert line.startswith("twinaid: privacy migrate: registry's log does not verify: ")
        assert "at position 2; nothing was rewritten" in line
        assert asyncio.run(log_state(url))[0] == logged
    finally:
        asyncio.run(drop(stack.server, url))
