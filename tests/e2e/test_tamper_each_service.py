"""Issue 6: tamper with each service's database behind its back; verify and replay name where.

For each service a log is written and sealed, a signed checkpoint taken and kept by the
auditor, and more written after it. Then, on a copy of that database per kind of tampering, a
superuser changes rows with the append-only triggers disabled; the service's own
`/v1/audit/verify` and the auditor's replay from the service's feed must both name the
position.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from services.audit import replay, sources
from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared import chain, directory, signing
from shared import db as dbmod
from shared.auth import Role
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.metrics import Metrics
from shared.outbox import Relay
from shared.rows import from_row
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import SESSION_SIGNER, settings_for

APPS = {"registry": registry_app, "pledges": pledges_app, "shipments": shipments_app}
NOW = datetime(2026, 11, 24, tzinfo=UTC)

# each: the SQL run with triggers off, and the position both checks must name
TAMPERING = {
    "modify a field": (
        "UPDATE events SET data = jsonb_set(data::jsonb, '{n}', '99') WHERE event_id ="
        " (SELECT event_id FROM event_chain WHERE position = 3)",
        3,
    ),
    "delete a row": (
        "DELETE FROM events WHERE event_id = (SELECT event_id FROM event_chain WHERE position = 4)",
        4,
    ),
    "insert a row": (
        """INSERT INTO events (tx_id, event_id, stream_type, stream_id,
                        stream_version, event_type, schema_version, occurred_at, recorded_at,
                        data, metadata)
                     SELECT e.tx_id, gen_random_uuid(), 'test', 'forged', 1, 'test.forged', 1,
                            e.occurred_at, e.recorded_at, '{}', e.metadata
                     FROM events e JOIN event_chain c USING (event_id) WHERE c.position = 2""",
        3,
    ),
    "swap two rows": (
        """UPDATE event_chain SET position = -1 WHERE position = 5;
                         UPDATE event_chain SET position = 5 WHERE position = 6;
                         UPDATE event_chain SET position = 6 WHERE position = -1""",
        5,
    ),
    # spliced in at position 3 with the whole chain recomputed: only the signed checkpoint
    # (position 6, now shifted to 7) shows the history is no longer the one signed
    "insert a row into the chain and re-hash": ("REHASH-INSERT", 6),
    "truncate the tail after a checkpoint": (
        """DELETE FROM events WHERE event_id IN
               (SELECT event_id FROM event_chain WHERE position > 4);
           DELETE FROM event_chain WHERE position > 4;
           UPDATE sealer_state SET position = 4,
               hash = (SELECT hash FROM event_chain WHERE position = 4)""",
        5,
    ),
}


@pytest.fixture(scope="module", params=sorted(APPS))
async def original(
    request: pytest.FixtureRequest,
    pg_server: str,
) -> AsyncIterator[tuple[str, str, list[dict[str, Any]]]]:
    """A service database: 6 events, a signed checkpoint (position 7) kept by the auditor,
    then 3 more events; all sealed."""
    service = request.param
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text(f"services.{service}")
    ) as url:
        conn = await asyncpg.connect(url)
        try:
            await _write(conn, 6, "before")
            await seal_everything(conn)
            db = Database(url, max_size=2)
            await db.open()
            try:
                relay = Relay(
                    service=service,
                    settings=settings_for(url, checkpoint_interval=1e-6),
                    db=db,
                    metrics=Metrics(service),
                    # the key the services' TRUSTED_KEYS pin: verify checks against it
                    signer=SESSION_SIGNER,
                )
                assert await relay.checkpoint_if_due()
            finally:
                await db.close()
            await _write(conn, 3, "after")
            await seal_everything(conn)
            held = [
                json.loads(r["data"])
                for r in await conn.fetch(
                    "SELECT data FROM events WHERE event_type = $1", signing.CHECKPOINT
                )
            ]
        finally:
            await conn.close()
        assert [c["position"] for c in held] == [6]
        yield service, url, held


async def _write(conn: asyncpg.Connection, n: int, prefix: str) -> None:
    for i in range(n):
        await PostgresEventStore(conn).append(
            stream_type="test",
            stream_id=f"{prefix}-{i}",
            expected_version=0,
            events=[NewEvent("test.happened", {"n": i})],
            metadata=Metadata(actor="k", organisation="kharkiv"),
            now=NOW,
        )


async def _splice_and_rehash(conn: asyncpg.Connection, *, at: int) -> None:
    """What an attacker with the database (but not the signing key) can do at best."""
    forged = uuid.uuid4()
    await conn.execute(
        """INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,
                               schema_version, occurred_at, recorded_at, data, metadata)
           VALUES ($1, 'test', 'forged', 1, 'test.happened', 1, $2, $2, '{"n": 7}', '{}')""",
        forged,
        NOW,
    )
    await conn.execute("UPDATE event_chain SET position = -position WHERE position >= $1", at)
    await conn.execute("UPDATE event_chain SET position = 1 - position WHERE position < 0")
    await conn.execute(
        "INSERT INTO event_chain (position, event_id, hash) VALUES ($1, $2, '')", at, forged
    )
    rows = await conn.fetch(
        "SELECT c.position, e.* FROM event_chain c JOIN events e ON e.event_id = c.event_id"
        " ORDER BY c.position"
    )
    previous = chain.GENESIS
    for row in rows:
        previous = chain.link(previous, from_row(row), position=row["position"])
        await conn.execute(
            "UPDATE event_chain SET hash = $1 WHERE position = $2", previous, row["position"]
        )
    await conn.execute("UPDATE sealer_state SET position = $1, hash = $2", len(rows), previous)


async def _copy(pg_server: str, url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(dbmod.with_database(pg_server, "postgres"))
    try:
        template = dbmod.database_name(url)
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return dbmod.with_database(url, name)


@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_verify_and_replay_name_the_position_of_each_kind_of_tampering(
    original: tuple[str, str, list[dict[str, Any]]],
    pg_server: str,
    kind: str,
) -> None:
    service, url, held = original
    sql, position = TAMPERING[kind]
    copy = await _copy(pg_server, url)
    try:
        conn = await asyncpg.connect(copy)
        try:
            await conn.execute(
                "ALTER TABLE events DISABLE TRIGGER USER;"
                " ALTER TABLE event_chain DISABLE TRIGGER USER"
            )
            if sql == "REHASH-INSERT":
                await _splice_and_rehash(conn, at=3)
            else:
                await conn.execute(sql)
            await conn.execute(
                "ALTER TABLE events ENABLE TRIGGER USER;"
                " ALTER TABLE event_chain ENABLE TRIGGER USER"
            )
        finally:
            await conn.close()
        auditor = await issue_key(copy, organisation="cour-des-comptes", roles=[Role.AUDITOR])
        app = APPS[service](settings_for(copy))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                # the auditor hands the service the checkpoints it kept
                verdict, deep = [
                    (
                        await client.post(
                            "/v1/audit/verify" + query,
                            json={"checkpoints": held},
                            headers={"Authorization": f"Bearer {auditor}"},
                        )
                    ).json()
                    for query in ("", "?deep=true")
                ]
                # the replay reads only the feed, never the database: what it cannot see
                # (a row inserted outside the chain) it cannot name
                report, _ = await replay.replay(
                    service,
                    sources.from_feed(client, "http://svc", key=auditor),
                    scratch_server=None,
                    held_checkpoints=held,
                    progress=lambda n: None,
                )
        assert (verdict["intact"], verdict["bad_position"]) == (False, position), verdict
        same = {**deep, "recanonicalised": verdict["recanonicalised"]}
        assert verdict == same, f"rendered {verdict}, canonicalised again {deep}"
        assert report.verdict is not None
        if kind == "insert a row":
            assert report.verdict.intact, "the forged row is in no chain, so not in the feed"
        else:
            assert (report.verdict.intact, report.verdict.bad_position) == (False, position), (
                report.verdict
            )
    finally:
        admin = await asyncpg.connect(dbmod.with_database(pg_server, "postgres"))
        try:
            await admin.execute(
                f'DROP DATABASE IF EXISTS "{dbmod.database_name(copy)}" WITH (FORCE)'
            )
        finally:
            await admin.close()
