"""Two registry API processes on one database share each key's rate limit: together they
admit what ONE bucket allows (burst + rate x elapsed, the elapsed time measured), not twice
that, on the database's own clock. Only counts are asserted, never how fast anything is."""

from __future__ import annotations

import asyncio
import math
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared import db as dbmod
from shared.auth import Role
from shared.infra import free_port
from shared.testing import fresh_database, issue_key
from tests.e2e.processes import Proc, Stack

# two API processes sharing one bucket: the bucket's SQL runs on both PostgreSQL versions in
# tests/shared/test_ratelimit.py; CI runs this once
pytestmark = pytest.mark.once

RATE = 1.0  # tokens a second
BURST = 5
WINDOW_S = 3.0  # how long the alternating test keeps asking after its first answer


@dataclass
class Replicas:
    urls: list[str]
    keys: list[str]  # one per test that needs a bucket of its own


@pytest.fixture
async def replicas(pg_server: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as db:
        keys = [await issue_key(db, organisation=f"org-{i}", roles=[Role.MEMBER]) for i in range(3)]
        # the APIs never reach the broker: no Kafka address is needed, and none is ready
        stack = Stack(kafka="127.0.0.1:1", prefix=f"t{uuid.uuid4().hex[:8]}.", logs=tmp_path)
        env = stack.env(db, RATE_LIMIT_PER_SECOND=str(RATE), RATE_LIMIT_BURST=str(BURST))
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1"]
        try:
            procs = []
            for i in range(2):
                port = free_port()
                argv = [*uvicorn, "--port", str(port), "services.registry.app:create_app"]
                proc = Proc(f"registry-api-{i}", argv, env, tmp_path / f"api-{i}.log", port=port)
                stack.procs.append(proc.start())
                procs.append(proc)
            urls = [stack.wait_ready(proc, path="/healthz") for proc in procs]
            yield Replicas(urls, keys)
        finally:
            stack.stop_all()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_one_key_alternating_between_two_replicas_gets_one_bucket(
    replicas: Replicas,
) -> None:
    key, other = replicas.keys[0], replicas.keys[1]
    statuses: list[int] = []
    limited: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=30) as http:
        start = time.monotonic()
        first_answer = last_sent = 0.0
        while True:
            sent = time.monotonic()
            answer = await http.get(
                f"{replicas.urls[len(statuses) % 2]}/v1/organisations", headers=bearer(key)
            )
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                limited.append(answer)
            if len(statuses) == 1:
                first_answer = time.monotonic()
            last_sent = sent
            # ask until the window is over, ending on a refusal: the bucket is then empty
            if time.monotonic() - first_answer >= WINDOW_S and answer.status_code == 429:
                break
        end = time.monotonic()
        fresh = [
            (await http.get(f"{url}/v1/organisations", headers=bearer(other))).status_code
            for url in replicas.urls
        ]
    admitted = statuses.count(200)
    assert admitted + len(limited) == len(statuses), f"only 200 or 429: {set(statuses)}"
    assert statuses[:BURST] == [200] * BURST, "a new key's bucket starts full"
    # ONE bucket: everything it held plus what it gained while requests came (two buckets
    # would admit 2 x BURST at once, then twice the rate)
    assert admitted <= BURST + RATE * (end - start)
    # ... and it refills at the rate: ending empty, it gave at least what it gained between
    # the first answer and the last request, less the fraction of a token still in it
    assert admitted >= BURST + math.floor(RATE * (last_sent - first_answer)) - 1
    for answer in limited:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "1"
    assert fresh == [200, 200], "another key has a bucket of its own"


async def test_concurrent_requests_on_both_replicas_never_exceed_the_bucket(
    replicas: Replicas,
) -> None:
    key = replicas.keys[2]
    requests = 6 * BURST
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=requests)) as http:
        start = time.monotonic()
        answers = await asyncio.gather(
            *(
                http.get(f"{replicas.urls[i % 2]}/v1/organisations", headers=bearer(key))
                for i in range(requests)
            )
        )
        end = time.monotonic()
    statuses = [a.status_code for a in answers]
    admitted = statuses.count(200)
    assert admitted + statuses.count(429) == requests, f"only 200 or 429: {set(statuses)}"
    assert BURST <= admitted <= BURST + RATE * (end - start)
    by_replica = [[s for i, s in enumerate(statuses) if i % 2 == r] for r in range(2)]
    assert all(429 in mine for mine in by_replica), "both replicas refused once it was spent"
