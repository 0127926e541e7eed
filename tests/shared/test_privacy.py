"""Personal data sealed per subject (shared/privacy.py): what the log holds, what views show,
erasure, access, retention, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared import privacy, privacy_subjects
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.projections import project
from shared.testing import seal_everything
from shared.worker import Worker
from tests.conftest import settings_for

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OLHA = {"name": "Olha Kravchenko", "role": "head of the municipal medical warehouse"}
PHONE = "+380 57 700 1234"
PERSONAL = ("name", "phone", "email")


async def _seal(conn: asyncpg.Connection, person: dict[str, object], org: str = "kharkiv") -> dict:
    return await privacy.seal_person(
        conn, person, service="shipments", organisation=org, personal=PERSONAL, now=NOW
    )


async def _record(conn: asyncpg.Connection, stream: str, data: dict[str, object]) -> None:
    recorded = await PostgresEventStore(conn).append(
        stream_type="convoy",
        stream_id=stream,
        expected_version=0,
        events=[NewEvent("shipments.delivery-confirmed", data, occurred_at=NOW)],
        metadata=Metadata(actor="test"),
        now=NOW,
    )
    await project(conn, [privacy.projection(["shipments.delivery-confirmed"])], recorded)


async def test_a_sealed_person_holds_no_personal_value_in_clear_and_reveals_to_it(
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        sealed = await _seal(conn, {**OLHA, "phone": PHONE, "email": None})
        assert sealed["role"] == OLHA["role"], "a role names a function: kept in clear"
        assert sealed["personal"] == ["name", "phone"], "absent fields are not sealed"
        text = json.dumps(sealed)
        assert "Olha" not in text and "700 1234" not in text
        assert sealed["subject_id"].startswith("shipments-")
        assert await privacy.reveal(conn, {"confirmed_by": sealed}) == {
            "confirmed_by": {
                "role": OLHA["role"],
                "subject_id": sealed["subject_id"],
                "erased": False,
                "name": "Olha Kravchenko",
                "phone": PHONE,
            }
        }
        again = await _seal(conn, {"name": "  olha   KRAVCHENKO "})
        assert again["subject_id"] == sealed["subject_id"], "the same person, one subject"
        other_org = await _seal(conn, OLHA, org="lille")
        assert other_org["subject_id"] != sealed["subject_id"], "subjects are per organisation"
        assert await _seal(conn, sealed) == sealed, "sealing a sealed person changes nothing"
        with pytest.raises(ValueError):
            await _seal(conn, {"name": "  ", "phone": PHONE})
    finally:
        await conn.close()


async def test_a_tampered_or_foreign_ciphertext_never_reveals(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        olha = await _seal(conn, OLHA)
        other = await _seal(conn, {"name": "Serhii Bondarenko"})
        swapped = {**olha, "sealed": other["sealed"]}  # another subject's ciphertext
        shown = await privacy.reveal(conn, swapped)
        assert shown["name"] == privacy.ERASED and "Serhii" not in json.dumps(shown)
        foreign = {**olha, "subject_id": "pledges-" + "0" * 32}
        assert (await privacy.reveal(conn, foreign))["name"] == "(held by pledges)"
        assert privacy.withheld({"x": [olha]}) == {
            "x": [{k: v for k, v in olha.items() if k != "sealed"}]
        }
    finally:
        await conn.close()


async def test_erasure_destroys_the_key_records_an_event_and_the_log_still_verifies(
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            olha = await _seal(conn, {**OLHA, "phone": PHONE})
            await _record(conn, "convoy-1", {"convoy_id": "1", "confirmed_by": olha})
            await conn.execute(
                "INSERT INTO idempotency_keys (organisation, key, request_hash, status_code,"
                " response, created_at) VALUES ('kharkiv', 'k1', 'h'::bytea, 201, $1, $2)",
                json.dumps({"confirmed_by": {**OLHA, "subject_id": olha["subject_id"]}}),
                NOW,
            )
        sid = olha["subject_id"]
        found = await privacy_subjects.occurrences(conn, sid)
        assert [o["stream_id"] for o in found] == ["convoy-1"]
        assert found[0]["persons"][0]["name"] == "Olha Kravchenko"
        assert [
            s.subject_id
            for s in await privacy_subjects.find(
                conn, organisation="kharkiv", name="Olha Kravchenko"
            )
        ] == [sid]
        async with conn.transaction():
            erased = await privacy_subjects.erase(
                conn,
                sid,
                requested_by="kharkiv",
                legal_basis="gdpr-art-17",
                metadata=Metadata(actor="test"),
                now=NOW + timedelta(days=1),
            )
        assert erased is not None and erased.erased_at == NOW + timedelta(days=1)
        row = await conn.fetchrow(
            "SELECT data_key, fingerprint FROM privacy_subjects WHERE subject_id = $1", sid
        )
        assert (row["data_key"], row["fingerprint"]) == (None, None)
        assert (
            await privacy_subjects.find(conn, organisation="kharkiv", name="Olha Kravchenko") == []
        )
        shown = await privacy.reveal(conn, olha)
        assert (shown["name"], shown["phone"], shown["erased"]) == (
            privacy.ERASED,
            privacy.ERASED,
            True,
        )
        assert shown["role"] == OLHA["role"]
        events = await conn.fetch(
            "SELECT event_type, data::text AS data FROM events WHERE stream_id = $1",
            f"subject-{sid}",
        )
        assert [e["event_type"] for e in events] == [privacy_subjects.SUBJECT_ERASED]
        assert json.loads(events[0]["data"])["legal_basis"] == "gdpr-art-17"
        dumped = await conn.fetchval("SELECT string_agg(response::text, '') FROM idempotency_keys")
        assert dumped is None, "a stored answer that showed the person is dropped"
        again = await privacy_subjects.erase(
            conn,
            sid,
            requested_by="lille",
            legal_basis="other",
            metadata=Metadata(actor="test"),
            now=NOW + timedelta(days=2),
        )
        assert again is not None and again.erased_by == "kharkiv", "the first erasure stands"
        await seal_everything(conn)
        verdict = await PostgresEventStore(conn).verify()
        assert verdict.intact, verdict.problem
    finally:
        await conn.close()


async def test_retention_erases_only_the_subjects_its_query_names(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        old = await _seal(conn, {"name": "Taras Melnyk"})
        recent = await _seal(conn, {"name": "Iryna Shevchenko"})
        await conn.execute(
            "UPDATE privacy_subjects SET last_recorded_at = $2 WHERE subject_id = $1",
            old["subject_id"],
            NOW - timedelta(days=800),
        )
        due = (
            "SELECT subject_id FROM privacy_subjects WHERE erased_at IS NULL"
            " AND last_recorded_at < $1 ORDER BY subject_id LIMIT $2"
        )
        erased = await privacy_subjects.erase_expired(
            conn,
            due_sql=due,
            retention=privacy_subjects.DEFAULT_RETENTION,
            now=NOW,
            metadata=Metadata(actor="worker"),
        )
        assert erased == [old["subject_id"]]
        assert (await privacy.reveal(conn, recent))["name"] == "Iryna Shevchenko"
        subject = await privacy_subjects.subject(conn, old["subject_id"])
        assert subject is not None and subject.legal_basis == "retention"
    finally:
        await conn.close()


async def test_the_worker_erases_who_is_due_and_drops_old_stored_answers(db_url: str) -> None:
    settings = settings_for(db_url, idempotency_keep_hours=1, retention_interval=3600)
    due = (
        "SELECT subject_id FROM privacy_subjects WHERE erased_at IS NULL"
        " AND last_recorded_at < $1 ORDER BY subject_id LIMIT $2"
    )
    worker = Worker(
        service="shipments", settings=settings, schema=[], handlers={}, retention_due=due
    )
    await worker.db.open()
    try:
        async with worker.db.connection() as conn:
            old = await _seal(conn, {"name": "Taras Melnyk"})
            await conn.execute(
                "UPDATE privacy_subjects SET last_recorded_at = now() - interval '800 days'"
            )
            recent = await _seal(conn, {"name": "Iryna Shevchenko"})
            for key, age in (("old", "2 hours"), ("recent", "10 minutes")):
                await conn.execute(
                    "INSERT INTO idempotency_keys (organisation, key, request_hash, status_code,"
                    f" response, created_at) VALUES ('kharkiv', $1, 'h'::bytea, 201, '{{}}',"
                    f" now() - interval '{age}')",
                    key,
                )
        stop = asyncio.Event()
        task = asyncio.create_task(worker._retention(stop))
        async with worker.db.connection() as conn:
            for _ in range(200):
                keys = await conn.fetch("SELECT key FROM idempotency_keys ORDER BY key")
                erased = await privacy_subjects.subject(conn, old["subject_id"])
                if len(keys) == 1 and erased is not None and erased.erased_at is not None:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await task
            assert [k["key"] for k in keys] == ["recent"], "answers older than the hour dropped"
            assert erased is not None and erased.legal_basis == "retention"
            assert (await privacy.reveal(conn, recent))["name"] == "Iryna Shevchenko"
    finally:
        await worker.http.aclose()
        await worker.db.close()


def test_subjects_are_found_at_any_depth_in_any_json_like_container() -> None:
    from collections import OrderedDict
    from types import MappingProxyType

    sealed = {"subject_id": "pledges-a", "sealed": "x", "personal": ["name"]}
    value = {
        "n": 1,
        "flag": True,
        "none": None,
        "text": "subject_id sealed",
        "lines": [{"receiver": sealed}, ("t", {"subject_id": "pledges-b", "sealed": "y"})],
        "deep": [[[MappingProxyType({"p": OrderedDict(subject_id="pledges-c", sealed="z")})]]],
        # a subject id without its ciphertext is not a sealed person
        "half": {"subject_id": "pledges-d"},
    }
    assert privacy.subjects_in(value) == {"pledges-a", "pledges-b", "pledges-c"}
    assert privacy.subjects_in(sealed) == {"pledges-a"}
    assert privacy.subjects_in("pledges-a") == set()
    assert privacy.subjects_in([1, 2.5, None]) == set()
