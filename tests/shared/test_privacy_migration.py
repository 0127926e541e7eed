"""Old events holding persons in clear are rewritten in place into their sealed form (issue 20,
point 7: shared/privacy_migration.py): no clear name is left in the log, the chain still
verifies (a redacted position links with its original body's digest, its body hashes to the
digest a signed `privacy.log-redacted` statement names), checkpoints signed before stay valid,
a tampered event or a redaction no trusted statement covers is caught, a second run rewrites
nothing."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord

from services.audit import export, replay
from services.registry.app import create_app as registry_app
from services.shipments.demo.data import MEDICINES
from shared import (
    authenticity,
    chain,
    chain_verifier,
    outbox,
    privacy,
    privacy_migration,
    sealer,
    signing,
)
from shared import db as dbmod
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent, RecordedEvent, Selection
from shared.incoming import Incoming, parse_feed_event, parse_record
from shared.keys import KeyRing
from shared.rows import COLUMNS, from_row
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import settings_for

pytestmark = pytest.mark.once

SERVICE = "registry"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=10)
CONTACT_TYPE = "test.contact-recorded"
META = Metadata(actor="k", organisation="org-lille", correlation_id="c")


def demo_people() -> list[dict[str, Any]]:
    """The demo's real people (services/shipments/demo/data.py) as v1 events held them: the
    receiver, a driver, the escort leader."""
    assert MEDICINES.delivery is not None
    escort = next(e["to_party"]["person"] for e in MEDICINES.entries if "to_party" in e)
    return [dict(MEDICINES.delivery["receiver"]), dict(MEDICINES.plan["drivers"][0]), dict(escort)]


PEOPLE = demo_people()
NAMES = [p["name"] for p in PEOPLE]


async def seal_v1(
    conn: asyncpg.Connection, event_type: str, data: dict[str, Any], *, now: datetime
) -> dict[str, Any] | None:
    """A service's seal_v1: the contact sealed (name, phone, email personal; role in clear)."""
    if event_type != CONTACT_TYPE:
        return None
    contact = data.get("contact")
    if contact is None:
        return data
    sealed = await privacy.seal_person(
        conn,
        contact,
        service=SERVICE,
        organisation=str(data["organisation_id"]),
        personal=["name", "phone", "email"],
        now=now,
    )
    return {**data, "contact": sealed}


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    yield connection
    await connection.close()


async def append(conn: asyncpg.Connection, stream: str, event_type: str, data: Any) -> None:
    store = PostgresEventStore(conn)
    await store.append(
        stream_type="test",
        stream_id=stream,
        expected_version=await store.current_version(stream),
        events=[NewEvent(event_type, data)],
        metadata=META,
        now=NOW,
    )


async def checkpoint(conn: asyncpg.Connection, signer: signing.Signer) -> dict[str, Any]:
    """What the relay leader does at each interval: sign the sealed head."""
    await seal_everything(conn)
    position, head = await sealer.head(conn)
    data = signer.checkpoint(service=SERVICE, position=position, head=head, at=NOW)
    store = PostgresEventStore(conn)
    stream = f"checkpoint-{SERVICE}"
    await store.append(
        stream_type=signing.STREAM_TYPE,
        stream_id=stream,
        expected_version=await store.current_version(stream),
        events=[NewEvent(signing.CHECKPOINT, data)],
        metadata=Metadata(actor="registry-relay"),
        now=NOW,
    )
    await seal_everything(conn)
    return data


async def old_log(conn: asyncpg.Connection, signer: signing.Signer) -> dict[str, Any]:
    """A log written before issue 20: contacts in clear (v1), other events, a checkpoint
    signed in between and one at the end. Returns the first checkpoint."""
    for i, person in enumerate(PEOPLE):
        await append(
            conn, f"org-{i}", CONTACT_TYPE, {"organisation_id": f"org-{i}", "contact": person}
        )
        await append(conn, f"other-{i}", "test.happened", {"n": i})
    first = await checkpoint(conn, signer)
    await append(conn, "org-9", CONTACT_TYPE, {"organisation_id": "org-9", "contact": None})
    await append(conn, "org-0", CONTACT_TYPE, {"organisation_id": "org-0", "contact": PEOPLE[0]})
    await checkpoint(conn, signer)
    return first


def pinned(signer: signing.Signer) -> KeyRing:
    return KeyRing.pinned({SERVICE: [signer.public_key]})


async def verify(conn: asyncpg.Connection, signer: signing.Signer, **kw: Any) -> chain.Verdict:
    return await sealer.verify(conn, service=SERVICE, keys=pinned(signer), **kw)


async def clear_names(conn: asyncpg.Connection) -> list[str]:
    text = await conn.fetchval("SELECT coalesce(string_agg(data::text, ' '), '') FROM events")
    return [n for n in NAMES if n in text]


async def position_of_contact(conn: asyncpg.Connection, stream: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT c.position FROM event_chain c JOIN events e ON e.event_id = c.event_id"
            " WHERE e.stream_id = $1 AND e.event_type = $2 ORDER BY c.position LIMIT 1",
            stream,
            CONTACT_TYPE,
        )
    )


async def logged(conn: asyncpg.Connection) -> list[RecordedEvent]:
    """The sealed log as a feed or a topic hands it to an auditor (no log_redactions)."""
    rows = await conn.fetch(
        f"SELECT c.position, c.hash, {COLUMNS} FROM event_chain c"
        " JOIN events e ON e.event_id = c.event_id ORDER BY c.position"
    )
    return [from_row(r, position=r["position"], hash=bytes(r["hash"])) for r in rows]


async def stream_of(events: list[RecordedEvent]) -> AsyncIterator[RecordedEvent]:
    for event in events:
        yield event


async def tamper(conn: asyncpg.Connection, sql: str, *args: Any) -> None:
    await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    await conn.execute(sql, *args)
    await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


async def test_old_events_are_sealed_in_place_and_the_chain_still_verifies(
    conn: asyncpg.Connection,
) -> None:
    signer = signing.Signer.generate()
    first = await old_log(conn, signer)
    assert await clear_names(conn) == NAMES
    before = await verify(conn, signer)
    assert before.intact and before.checkpoints_checked == 2

    report = await privacy_migration.migrate(
        conn,
        service=SERVICE,
        signer=signer,
        seal_v1=seal_v1,
        now=LATER,
        projections=[privacy.projection([CONTACT_TYPE])],
    )
    await seal_everything(conn)

    # the four events naming a person, and only those (the contact-less one is left as it is)
    assert report.examined == 8 and report.rewritten == 4 and report.unsealed == 0
    assert report.positions == sorted(report.positions) and len(set(report.positions)) == 4
    assert report.head_position == before.head_position
    assert await clear_names(conn) == []
    rows = await conn.fetch(
        "SELECT c.position, e.schema_version, e.data FROM event_chain c"
        " JOIN events e ON e.event_id = c.event_id WHERE e.event_type = $1 ORDER BY c.position",
        CONTACT_TYPE,
    )
    assert [r["position"] for r in rows if r["schema_version"] == 2] == report.positions
    # the people are still there for whom may see them, opened with their subject's key
    shown = await privacy.reveal(conn, json.loads(rows[0]["data"]))
    assert shown["contact"]["name"] == NAMES[0] and shown["contact"]["erased"] is False
    assert shown["contact"]["role"] == PEOPLE[0].get("role")
    # the read models were rebuilt from the sealed events
    assert await conn.fetchval("SELECT count(*) FROM privacy_occurrences") == 4

    # one signed statement, the same redactions in the table
    [statement] = await conn.fetch(
        "SELECT event_id, data FROM events WHERE event_type = $1", privacy_migration.LOG_REDACTED
    )
    assert str(statement["event_id"]) == report.statement_event_id
    data = json.loads(statement["data"])
    privacy_migration.LogRedacted.model_validate(data)
    assert [r["position"] for r in data["redactions"]] == report.positions
    assert data["head_position"] == before.head_position
    assert data["head_hash"] == before.head_hash.hex() and data["public_key"] == signer.public_key
    table = await conn.fetch("SELECT position, before_sha256 FROM log_redactions ORDER BY 1")
    assert [r["position"] for r in table] == report.positions
    assert [bytes(r["before_sha256"]).hex() for r in table] == [
        r["before_sha256"] for r in data["redactions"]
    ]

    # verify: intact against the pinned key, the chain hashes unchanged, every checkpoint
    # signed before the migration still valid, on the rendered and the deep walk
    for deep in (False, True):
        verdict = await verify(conn, signer, held_checkpoints=[first], deep=deep)
        assert verdict.intact, verdict
        assert verdict.redactions_checked == 4 and verdict.warning is None
        assert verdict.checkpoints_checked == 3  # two in the log, one held
        # rendered: each redacted position accepted on the fast path (log_redactions)
        assert verdict.recanonicalised == (verdict.head_position if deep else 0)
        assert verdict.head_position == before.head_position + 1  # the statement
    # an auditor replaying the log from a feed or a topic (no log_redactions table) too
    audit, _ = await replay.replay(
        SERVICE,
        stream_of(await logged(conn)),
        scratch_server=None,
        held_checkpoints=[first],
        keys=pinned(signer),
    )
    assert audit.verdict is not None and audit.verdict.intact, audit.verdict
    assert audit.verdict.redactions_checked == 4


async def test_a_migrated_event_tampered_with_afterwards_fails_verify_at_its_position(
    conn: asyncpg.Connection,
) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    report = await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
    )
    await seal_everything(conn)
    at = report.positions[1]
    await tamper(
        conn,
        "UPDATE events e SET data = json_build_object('organisation_id', 'org-1', 'contact', "
        " (e.data::jsonb -> 'contact') || '{\"role\": \"someone else\"}')::json"
        " FROM event_chain c WHERE c.event_id = e.event_id AND c.position = $1",
        at,
    )
    for deep in (False, True):
        verdict = await verify(conn, signer, deep=deep)
        assert not verdict.intact and verdict.bad_position == at, verdict
        assert verdict.problem is not None and "hash mismatch" in verdict.problem
    # the original clear body put back is accepted: it is what was sealed
    original = await stream_original(conn, at)
    await tamper(
        conn,
        "UPDATE events SET data = $2::json, schema_version = 1 WHERE event_id = $1",
        original[0],
        original[1],
    )
    assert (await verify(conn, signer)).intact


async def stream_original(conn: asyncpg.Connection, position: int) -> tuple[Any, str]:
    """The event at `position` as it was before the migration (from PEOPLE)."""
    row = await conn.fetchrow(
        "SELECT e.event_id, e.stream_id FROM event_chain c JOIN events e"
        " ON e.event_id = c.event_id WHERE c.position = $1",
        position,
    )
    i = int(str(row["stream_id"]).split("-")[1])
    data = {"organisation_id": f"org-{i}", "contact": PEOPLE[i]}
    return row["event_id"], chain.encode(data)


async def test_a_non_migrated_event_tampered_with_fails_before_the_statement(
    conn: asyncpg.Connection,
) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
    )
    await seal_everything(conn)
    at = int(
        await conn.fetchval(
            "SELECT c.position FROM event_chain c JOIN events e ON e.event_id = c.event_id"
            " WHERE e.stream_id = 'other-2'"
        )
    )
    await tamper(
        conn,
        "UPDATE events e SET data = '{\"n\":7}' FROM event_chain c"
        " WHERE c.event_id = e.event_id AND c.position = $1",
        at,
    )
    verdict = await verify(conn, signer)
    assert not verdict.intact and verdict.bad_position == at
    assert verdict.head_position == at - 1


async def test_a_redaction_no_trusted_statement_covers_fails(conn: asyncpg.Connection) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    at = await position_of_contact(conn, "org-1")
    # someone rewrites an event and records a redaction for it, with no statement
    row = await conn.fetchrow(
        f"SELECT c.hash, {COLUMNS} FROM event_chain c JOIN events e ON e.event_id ="
        " c.event_id WHERE c.position = $1",
        at,
    )
    event = from_row(row)
    forged = {"organisation_id": "org-1", "contact": {"name": "Someone Else"}}
    await tamper(
        conn,
        "UPDATE events SET data = $2::json WHERE event_id = $1",
        event.event_id,
        chain.encode(forged),
    )
    rewritten = from_row(
        await conn.fetchrow(f"SELECT {COLUMNS} FROM events e WHERE e.event_id = $1", event.event_id)
    )
    await conn.execute(
        "INSERT INTO log_redactions VALUES"
        " ($1, $2, $3, $4, gen_random_uuid(), 'x', now(), $5, 'x')",
        at,
        event.event_id,
        chain.body_digest(event, position=at),
        chain.body_digest(rewritten, position=at),
        signer.public_key,
    )
    verdict = await verify(conn, signer)
    assert not verdict.intact and verdict.bad_position == at, verdict
    assert verdict.problem is not None and "no redaction statement signed" in verdict.problem


async def test_a_statement_signed_by_a_key_not_pinned_covers_nothing(
    conn: asyncpg.Connection,
) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    intruder = signing.Signer.generate()
    report = await privacy_migration.migrate(
        conn, service=SERVICE, signer=intruder, seal_v1=seal_v1, now=LATER
    )
    await seal_everything(conn)
    statement_at = report.head_position + 1
    data = json.loads(
        await conn.fetchval(
            "SELECT data FROM events WHERE event_id = $1", uuid.UUID(str(report.statement_event_id))
        )
    )
    for deep in (False, True):
        verdict = await verify(conn, signer, deep=deep)
        assert not verdict.intact, verdict
        assert verdict.bad_position == statement_at
        assert verdict.problem is not None and "neither pinned nor announced" in verdict.problem
    # with the intruder's key pinned too it is intact; the statement altered after it was
    # signed is not
    both = KeyRing.pinned({SERVICE: [signer.public_key, intruder.public_key]})
    assert (await sealer.verify(conn, service=SERVICE, keys=both)).intact
    await tamper(
        conn,
        "UPDATE events SET data = $2::json WHERE event_id = $1",
        uuid.UUID(str(report.statement_event_id)),
        json.dumps({**data, "reason": "something else"}),
    )
    both = KeyRing.pinned({SERVICE: [signer.public_key, intruder.public_key]})
    verdict = await sealer.verify(conn, service=SERVICE, keys=both)
    assert not verdict.intact and verdict.bad_position == statement_at, verdict


async def test_a_statement_whose_redaction_is_altered_fails_at_the_redacted_position(
    conn: asyncpg.Connection,
) -> None:
    """The table claims a redaction the signed statement does not name as recorded."""
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    report = await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
    )
    await seal_everything(conn)
    at = report.positions[0]
    # the body is rewritten again and the table made to match it: the statement does not
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM event_chain c JOIN events e ON e.event_id = c.event_id"
        " WHERE c.position = $1",
        at,
    )
    again = {**dict(from_row(row).data), "contact": {"name": "Someone Else"}}
    await tamper(
        conn,
        "UPDATE events SET data = $2::json WHERE event_id = $1",
        row["event_id"],
        chain.encode(again),
    )
    changed = from_row(
        await conn.fetchrow(
            f"SELECT {COLUMNS} FROM events e WHERE e.event_id = $1", row["event_id"]
        )
    )
    await conn.execute(
        "UPDATE log_redactions SET after_sha256 = $2 WHERE position = $1",
        at,
        chain.body_digest(changed, position=at),
    )
    verdict = await verify(conn, signer)
    assert not verdict.intact and verdict.bad_position == at, verdict


async def test_migrating_twice_rewrites_nothing_the_second_time(conn: asyncpg.Connection) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    first = await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
    )
    await seal_everything(conn)
    events = await conn.fetchval("SELECT count(*) FROM events")
    second = await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER + timedelta(hours=1)
    )
    await seal_everything(conn)
    assert first.rewritten == 4
    assert second.rewritten == 0 and second.positions == [] and second.statement_event_id is None
    # the v1 events left as they were (three without persons, one with a contact-less record)
    assert second.examined == 4
    assert await conn.fetchval("SELECT count(*) FROM events") == events
    assert await conn.fetchval("SELECT count(*) FROM log_redactions") == 4
    assert (await verify(conn, signer)).intact


async def test_a_broken_log_is_refused_and_nothing_is_rewritten(conn: asyncpg.Connection) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    at = await position_of_contact(conn, "org-2")
    await tamper(
        conn,
        'UPDATE events e SET data = \'{"organisation_id":"org-2","contact":null}\''
        " FROM event_chain c WHERE c.event_id = e.event_id AND c.position = $1",
        at,
    )
    with pytest.raises(privacy_migration.Refused, match=f"position {at}"):
        await privacy_migration.migrate(
            conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
        )
    assert await clear_names(conn) == NAMES[:2]
    assert await conn.fetchval("SELECT count(*) FROM log_redactions") == 0
    assert await conn.fetchval("SELECT count(*) FROM privacy_subjects") == 0
    # the trigger is back: the log is append-only again
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("UPDATE events SET data = '{}'")


def published(
    events: list[RecordedEvent],
    signer: signing.Signer,
    carried: Callable[[int], dict[str, Any] | None],
) -> list[Incoming]:
    """The log as the relay publishes it again (one partition, in position order), each
    redacted position with the redaction `carried` gives it, read back as a consumer does."""
    out = []
    previous, lane = chain.GENESIS, authenticity.LANE_START
    for offset, event in enumerate(events):
        assert event.position is not None and event.hash is not None
        headers, lane = outbox.headers_for(
            SERVICE,
            event,
            signer=signer,
            previous=previous,
            lane=lane,
            redaction=carried(event.position),
        )
        record = ConsumerRecord(
            topic="registry.events",
            partition=0,
            offset=offset,
            timestamp=0,
            timestamp_type=0,
            key=event.stream_id.encode(),
            value=chain.encode(dict(event.data)).encode(),
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=0,
            headers=headers,
        )
        out.append(parse_record(record, upstream=SERVICE))
        previous = event.hash
    return out


async def test_a_redacted_event_published_again_is_authentic_only_with_its_signed_redaction(
    conn: asyncpg.Connection,
) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    report = await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
    )
    await seal_everything(conn)
    events = await logged(conn)
    redactions = await privacy_migration.carried(conn, [e.position or 0 for e in events])
    assert sorted(redactions) == report.positions
    ring = pinned(signer)

    # carried (relay republishing the log; a new consumer catching up from the start)
    messages = published(events, signer, redactions.get)
    assert authenticity.verify(pinned(signer), messages) == {}
    for message in messages:  # the feed's path: each event's link to the one before
        assert authenticity.link_problem(message, ring=ring) is None
    # not carried: each redacted position is a forgery, as before
    failed = authenticity.verify(pinned(signer), published(events, signer, lambda _: None))
    assert sorted(events[n].position or 0 for n in failed) == report.positions
    # signed by a key no one pinned
    intruder = signing.Signer.generate()

    def forged(position: int) -> dict[str, Any] | None:
        found = redactions.get(position)
        if found is None:
            return None
        event = events[position - 1]
        body = chain.redaction_body(
            SERVICE,
            chain.Redaction.from_dict(
                {**found, "position": position, "event_id": str(event.event_id)}
            ),
        )
        signature = base64.b64encode(intruder.key.sign(body)).decode()
        return {**found, "public_key": intruder.public_key, "signature": signature}

    failed = authenticity.verify(pinned(signer), published(events, signer, forged))
    assert sorted(events[n].position or 0 for n in failed) == report.positions
    assert all("neither pinned nor announced" in reason for reason in failed.values())
    # a redacted body altered afterwards, its true redaction carried: refused
    at = report.positions[0]
    altered = [
        dataclasses.replace(e, data={**e.data, "organisation_id": "org-x"})
        if e.position == at
        else e
        for e in events
    ]
    failed = authenticity.verify(pinned(signer), published(altered, signer, redactions.get))
    assert [events[n].position for n in failed] == [at]
    assert "neither the body that was sealed nor its redacted form" in failed[at - 1]


async def test_an_export_of_a_migrated_log_verifies_on_its_own(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    report = await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
    )
    await seal_everything(conn)
    events = await logged(conn)
    pins = KeyRing.pinned({SERVICE: [signer.public_key]})

    async def signed_head(position: int) -> dict[str, Any]:  # as the feed signs its last event
        assert position == events[-1].position and events[-1].hash is not None
        return signer.checkpoint(service=SERVICE, position=position, head=events[-1].hash, at=LATER)

    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"contacts.{fmt}"
        with path.open("w", newline="") as out:
            count = await export.export(
                stream_of(events),
                Selection(event_type=CONTACT_TYPE),
                fmt=fmt,
                out=out,
                signed_head=signed_head,
            )
        # the five contact events and the statement that covers the four rewritten
        assert count == 6
        assert not any(name in path.read_text() for name in NAMES)
        verdict = export.verify_export(path, trusted=pins)
        assert verdict["intact"] is True and verdict["checked"] == 6, verdict
        assert verdict["redactions_checked"] == 4
        # without a trusted key, who signed the statement cannot be told: not intact
        unpinned = export.verify_export(path)
        assert not unpinned["intact"] and "cannot be checked" in unpinned["problem"]
        # a rewritten line altered: caught, at its line
        lines = path.read_text().splitlines(keepends=True)
        wanted = report.positions[1]
        at = next(
            n
            for n, text in enumerate(lines)
            if text.startswith((f"{wanted},", f'{{"position": {wanted},'))
        )
        lines[at] = lines[at].replace("org-", "org-x", 1)
        path.write_text("".join(lines))
        verdict = export.verify_export(path, trusted=pins)
        assert not verdict["intact"] and verdict["position"] == report.positions[1], verdict
        assert verdict["line"] == at + 1
    # without the statement (cut out of the export), the rewritten lines do not verify
    path = tmp_path / "cut.jsonl"
    with path.open("w") as out:
        await export.export(
            stream_of(events), Selection(event_type=CONTACT_TYPE), fmt="jsonl", out=out
        )
    kept = [t for t in path.read_text().splitlines(keepends=True) if chain.LOG_REDACTED not in t]
    path.write_text("".join(kept))
    verdict = export.verify_export(path, trusted=pins)
    assert not verdict["intact"] and verdict["position"] == report.positions[0]


async def test_the_api_says_intact_and_its_feed_carries_the_redactions(
    pg_server: str, tmp_path: Path
) -> None:
    """GET /v1/audit/verify of the registry after a migration, and its feed caught up from
    the start as a consumer does (each link to the one before, the page's signed head)."""
    signer = signing.Signer.generate()
    key_file = tmp_path / "signing.key"
    signer.save(key_file)
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        conn = await asyncpg.connect(url)
        try:
            first = await old_log(conn, signer)
            report = await privacy_migration.migrate(
                conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER
            )
            await seal_everything(conn)
            settings = settings_for(
                url,
                signing_key_file=str(key_file),
                trusted_keys={SERVICE: [signer.public_key]},
            )
            auditor = await issue_key(url, organisation="twinaid", roles=[Role.AUDITOR])
            app = registry_app(settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
                    bearer = {"Authorization": f"Bearer {auditor}"}
                    for deep in ("false", "true"):
                        answer = await api.get(
                            "/v1/audit/verify", params={"deep": deep}, headers=bearer
                        )
                        assert answer.status_code == 200, answer.text
                        verdict = answer.json()
                        assert verdict["intact"] and verdict["warning"] is None, verdict
                        assert verdict["checkpoints_checked"] == 2
                    held = await api.post(
                        "/v1/audit/verify", json={"checkpoints": [first]}, headers=bearer
                    )
                    assert held.status_code == 200 and held.json()["intact"], held.text

                    page = await api.get("/v1/events", params={"limit": 1000}, headers=bearer)
                    assert page.status_code == 200, page.text
                    body = page.json()
                    carried = [e["position"] for e in body["events"] if "redaction" in e]
                    assert carried == report.positions
                    ring = pinned(signer)
                    previous = chain.GENESIS
                    for raw in body["events"]:
                        incoming = dataclasses.replace(
                            parse_feed_event(SERVICE, raw), previous_hash=previous
                        )
                        assert authenticity.link_problem(incoming, ring=ring) is None, raw
                        # the same event without what it carries is no longer its own
                        if "redaction" in raw:
                            bare = dataclasses.replace(incoming, redaction=None)
                            assert authenticity.link_problem(bare, ring=ring) is not None
                        previous = bytes.fromhex(raw["hash"])
                    last = body["events"][-1]
                    assert (
                        authenticity.head_problem(
                            ring,
                            SERVICE,
                            body["signed_head"],
                            position=last["position"],
                            chain_hash=bytes.fromhex(last["hash"]),
                        )
                        is None
                    )

                    # a migrated event tampered with afterwards: caught at its position
                    at = report.positions[2]
                    await tamper(
                        conn,
                        "UPDATE events e SET data = json_build_object('organisation_id',"
                        " 'org-2', 'contact', json_build_object('name', 'Someone Else'))"
                        " FROM event_chain c WHERE c.event_id = e.event_id AND c.position = $1",
                        at,
                    )
                    answer = await api.get("/v1/audit/verify", headers=bearer)
                    assert answer.status_code == 200
                    assert answer.json()["intact"] is False
                    assert answer.json()["bad_position"] == at
        finally:
            await conn.close()


async def test_many_redactions_are_listed_in_several_statements(conn: asyncpg.Connection) -> None:
    """A statement stays under what a consumer reads of an event: past `statement_size`
    redactions, the migration appends several, each covering its own."""
    signer = signing.Signer.generate()
    await old_log(conn, signer)
    report = await privacy_migration.migrate(
        conn, service=SERVICE, signer=signer, seal_v1=seal_v1, now=LATER, statement_size=3
    )
    await seal_everything(conn)
    assert report.rewritten == 4 and len(report.statement_event_ids) == 2
    assert report.statement_event_id == report.statement_event_ids[0]
    listed = [
        [r["position"] for r in json.loads(row["data"])["redactions"]]
        for row in await conn.fetch(
            "SELECT e.data FROM events e JOIN event_chain c ON c.event_id = e.event_id"
            " WHERE e.event_type = $1 ORDER BY c.position",
            privacy_migration.LOG_REDACTED,
        )
    ]
    assert listed == [report.positions[:3], report.positions[3:]]
    verdict = await verify(conn, signer, deep=True)
    assert verdict.intact and verdict.redactions_checked == 4, verdict
    # the second statement replaced by one signed by the service's own key that lists
    # nothing: the redaction it no longer covers fails, where it is
    second = uuid.UUID(report.statement_event_ids[1])
    data = json.loads(await conn.fetchval("SELECT data FROM events WHERE event_id = $1", second))
    emptied = chain.sign_redactions(
        signer,
        service=SERVICE,
        redactions=[],
        head_position=data["head_position"],
        head_hash=bytes.fromhex(data["head_hash"]),
        reason=data["reason"],
        at=LATER,
    )
    await tamper(
        conn,
        "UPDATE events SET data = $2::json WHERE event_id = $1",
        second,
        chain.encode(emptied),
    )
    # (the statement itself no longer hashes as sealed: it is the first failure)
    verdict = await verify(conn, signer)
    assert not verdict.intact and verdict.bad_position == report.head_position + 2
    # a log that sealed it that way (as a migration that listed too few would have): the
    # redaction no statement covers is the failure, where it is
    entries = []
    previous = chain.GENESIS
    for event in await logged(conn):
        assert event.position is not None and event.hash is not None
        sealed = event.hash
        if event.position >= report.head_position + 2:  # sealed again from the statement on
            sealed = chain.link(previous, event, position=event.position)
        entries.append(
            chain.ChainEntry(
                position=event.position, event_id=str(event.event_id), hash=sealed, event=event
            )
        )
        previous = sealed
    verdict = chain_verifier.verify(
        entries,
        service=SERVICE,
        keys=pinned(signer),
        redactions=await sealer.redactions(conn),
    )
    assert not verdict.intact and verdict.bad_position == report.positions[3], verdict
    assert verdict.problem is not None and "no redaction statement signed" in verdict.problem
