"""Faults on the real stack: a paused broker and a worker killed mid-batch."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared import db as dbmod
from shared import directory
from shared.auth import Role
from shared.infra import free_port, start_tansu
from shared.testing import fresh_database, issue_key
from tests.e2e.processes import Stack

# processes, the broker and kills: what they prove does not depend on the PostgreSQL version
# (the event store is tested on both): CI runs it once
pytestmark = pytest.mark.once


@pytest.fixture
def broker() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A broker of this test's own: it is paused, so it must not be shared."""
    port = free_port()
    proc = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def dbs(pg_server: str) -> AsyncIterator[tuple[str, str]]:
    async with (
        fresh_database(pg_server, dbmod.schema_text("services.registry")) as registry,
        fresh_database(
            pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")
        ) as pledges,
    ):
        yield registry, pledges


@pytest.fixture
def stack(broker: tuple[str, subprocess.Popen[bytes]], tmp_path: Path) -> Iterator[Stack]:
    s = Stack(kafka=broker[0], prefix=f"t{uuid.uuid4().hex[:8]}.", logs=tmp_path)
    try:
        yield s
    finally:
        s.stop_all()


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def eventually(check: object, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "did not converge in time"
        await asyncio.sleep(0.25)


def organisation(i: int) -> dict[str, object]:
    return {
        "organisation_id": f"org-{i}",
        "name": f"Hromada {i}",
        "kind": "municipality",
        "country": "UA",
    }


async def test_with_the_broker_paused_30_s_every_write_succeeds_and_nothing_is_lost(
    stack: Stack,
    broker: tuple[str, subprocess.Popen[bytes]],
    dbs: tuple[str, str],
) -> None:
    registry_db, pledges_db = dbs
    admin = await issue_key(registry_db, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
    feed_key = await issue_key(registry_db, organisation="pledges", roles=[Role.SERVICE])
    api = stack.api("registry", registry_db)
    url = stack.wait_ready(api)
    stack.worker("registry", registry_db)
    stack.worker("pledges", pledges_db, feeds={"registry": url}, feed_key=feed_key)
    statuses: list[int] = []
    async with httpx.AsyncClient(
        base_url=url, timeout=10, headers={"Authorization": f"Bearer {admin}"}
    ) as client:

        async def write(i: int) -> None:
            response = await client.post("/v1/organisations", json=organisation(i))
            statuses.append(response.status_code)

        for i in range(20):
            await write(i)
            await asyncio.sleep(0.05)
        broker[1].send_signal(signal.SIGSTOP)
        paused_at = asyncio.get_running_loop().time()
        i = 20
        while asyncio.get_running_loop().time() - paused_at < 30:
            await write(i)
            i += 1
            await asyncio.sleep(0.2)
        broker[1].send_signal(signal.SIGCONT)
        for j in range(i, i + 20):
            await write(j)
        total = i + 20
    assert statuses == [201] * total, f"a write failed while the broker was paused: {statuses}"

    async def all_arrived() -> bool:
        rows = await fetch(pledges_db, "SELECT count(*) AS n FROM directory")
        return int(rows[0]["n"]) == total

    await eventually(all_arrived, timeout=90)
    applied = await fetch(pledges_db, "SELECT applied_events FROM directory")
    assert {r["applied_events"] for r in applied} == {1}, "an event was applied twice"

    async def relay_caught_up() -> bool:
        relayed = await fetch(registry_db, "SELECT position FROM relay_checkpoint")
        logged = await fetch(registry_db, "SELECT count(*) AS n FROM events")
        return bool(relayed) and relayed[0]["position"] == logged[0]["n"]

    await eventually(relay_caught_up, timeout=30)


async def test_after_a_worker_is_killed_mid_batch_no_event_is_lost_or_applied_twice(
    stack: Stack,
    dbs: tuple[str, str],
) -> None:
    registry_db, pledges_db = dbs
    admin = await issue_key(registry_db, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
    feed_key = await issue_key(registry_db, organisation="pledges", roles=[Role.SERVICE])
    url = stack.wait_ready(stack.api("registry", registry_db))
    total = 600
    async with httpx.AsyncClient(
        base_url=url, timeout=10, headers={"Authorization": f"Bearer {admin}"}
    ) as client:
        for start in range(0, total, 50):
            responses = await asyncio.gather(
                *(
                    client.post("/v1/organisations", json=organisation(i))
                    for i in range(start, start + 50)
                )
            )
            assert {r.status_code for r in responses} == {201}
    relay = stack.worker("registry", registry_db)
    consumer = stack.worker("pledges", pledges_db, feeds={"registry": url}, feed_key=feed_key)

    async def count() -> int:
        return int((await fetch(pledges_db, "SELECT count(*) AS n FROM directory"))[0]["n"])

    # Kill at the first sign of progress: the consumer applies up to 200 events a transaction,
    # so a poll every few milliseconds on a connection kept open lands between its batches.
    watcher = await asyncpg.connect(pledges_db)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not await watcher.fetchval("SELECT EXISTS (SELECT 1 FROM directory)"):
            assert asyncio.get_running_loop().time() < deadline, "nothing was applied in time"
            await asyncio.sleep(0.002)
        consumer.signal(signal.SIGKILL)
    finally:
        await watcher.close()
    published = await fetch(
        registry_db, "SELECT coalesce(max(position), 0) AS p FROM relay_checkpoint"
    )
    relay.signal(signal.SIGKILL)
    killed_at = await count()
    assert killed_at < total, "the kill came too late to be mid-batch"
    stack.worker("registry", registry_db)
    stack.worker("pledges", pledges_db, feeds={"registry": url}, feed_key=feed_key)

    async def all_arrived() -> bool:
        return await count() == total

    await eventually(all_arrived, timeout=90)
    applied = await fetch(pledges_db, "SELECT applied_events FROM directory")
    assert {r["applied_events"] for r in applied} == {1}, "an event was applied twice"

    async def inbox_has_the_log() -> bool:
        # the restarted relay may append a chain checkpoint after the last organisation
        # arrived: it reaches the inbox a moment later (the inbox is unique per event id, so
        # nothing here can count twice)
        inbox = await fetch(pledges_db, "SELECT count(*) AS n FROM inbox")
        logged = await fetch(registry_db, "SELECT count(*) AS n FROM events")
        return bool(inbox[0]["n"] == logged[0]["n"])

    await eventually(inbox_has_the_log, timeout=30)
    logged = await fetch(registry_db, "SELECT count(*) AS n FROM events")
    assert published[0]["p"] <= logged[0]["n"]
