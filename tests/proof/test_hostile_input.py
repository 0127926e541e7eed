"""Hostile HTTP input at the shared edge, through the registry on real PostgreSQL.

Oversized bodies, deep JSON, huge lists, bad encodings, SQL and header injection and the per-key
rate limit: always a 4xx problem+json (never a 500), nothing stored, the tables still there.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.registry.app import create_app
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests import asgi
from tests.clock import ManualClock
from tests.conftest import settings_for
from tests.shared.kafka_helpers import produce, read_topic
from tests.shared.test_consumer import Rig, directory, register, rig, running, wait_for

__all__ = ["rig"]  # the consumer rig fixture, shared with tests/shared/test_consumer.py

OUT = Path(os.environ.get("TWINAID_PROOF_OUT", ".data/proof"))
KHARKIV = {
    "organisation_id": "kharkiv",
    "name": "Kharkiv",
    "kind": "municipality",
    "country": "UA",
}
SQL = [
    "'; DROP TABLE events; --",
    "kharkiv' OR '1'='1",
    "1; DELETE FROM api_keys",
    '" OR 1=1 --',
    "kharkiv'::text || (SELECT secret_hash FROM api_keys LIMIT 1)::text || '",
]
PROBLEM = "application/problem+json"


@dataclass
class Api:
    client: httpx.AsyncClient
    url: str
    admin: dict[str, str]

    async def count(self, table: str = "events") -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()


@pytest.fixture
async def api(pg_server: str) -> AsyncIterator[Api]:
    async with fresh_database(pg_server) as url:
        app = create_app(settings_for(url, rate_limit_per_second=0))
        async with app.router.lifespan_context(app):
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield Api(client, url, {"Authorization": f"Bearer {admin}"})


def assert_4xx_problem(response: httpx.Response, *allowed: int) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == PROBLEM


def _record(name: str, outcome: object) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "hostile.json"
    seen = json.loads(path.read_text()) if path.exists() else {}
    seen[name] = outcome
    path.write_text(json.dumps(seen, indent=2, sort_keys=True))


@pytest.mark.once
async def test_an_oversized_body_is_413_whether_announced_or_chunked(api: Api) -> None:
    huge = json.dumps({**KHARKIV, "name": "x" * 2_000_000}).encode()
    announced = await api.client.post("/v1/organisations", content=huge, headers=api.admin)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(huge), 64_000):
            yield huge[i : i + 64_000]

    chunked = await api.client.post("/v1/organisations", content=chunks(), headers=api.admin)
    assert_4xx_problem(announced, 413)
    assert_4xx_problem(chunked, 413)
    assert await api.count() == 0
    _record("oversized", [announced.status_code, chunked.status_code])


@pytest.mark.once
@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000])
async def test_deeply_nested_json_is_a_4xx_not_a_recursion_crash(api: Api, depth: int) -> None:
    deep = b'{"organisation_id": "deep", "name": ' + b"[" * depth + b"]" * depth + b"}"
    response = await api.client.post(
        "/v1/organisations",
        content=deep,
        headers={**api.admin, "Content-Type": "application/json"},
    )
    assert_4xx_problem(response, 400, 413, 422)
    assert await api.count() == 0
    _record(f"deep-{depth}", response.status_code)


@pytest.mark.once
async def test_a_huge_list_is_refused_and_stores_nothing(api: Api) -> None:
    body = {**KHARKIV, "aliases": [f"a{i}" for i in range(100_000)]}
    response = await api.client.post("/v1/organisations", json=body, headers=api.admin)
    assert_4xx_problem(response, 413, 422)
    small = {**KHARKIV, "aliases": ["a"] * 60_000}  # under 1 MB, still absurd
    again = await api.client.post("/v1/organisations", json=small, headers=api.admin)
    assert again.status_code < 500, again.text[:300]
    if again.status_code >= 400:
        assert again.headers["content-type"] == PROBLEM
    _record("huge-list", [response.status_code, again.status_code])


@pytest.mark.once
@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{",
        b'{"organisation_id": "k\xc3\x28", "name": "x", "kind": "municipality", "country": "UA"}',
        b'{"name": "\xed\xa0\x80"}',  # an encoded lone surrogate
        '{"name": "Kharkiv"}'.encode("utf-16"),
        b'{"name": "\\ud800"}',  # an escaped lone surrogate: valid JSON, not storable text
    ],
)
async def test_bad_encodings_are_a_4xx_problem(api: Api, raw: bytes) -> None:
    response = await api.client.post(
        "/v1/organisations", content=raw, headers={**api.admin, "Content-Type": "application/json"}
    )
    assert_4xx_problem(response, 400, 422)
    assert await api.count() == 0


@pytest.mark.once
@pytest.mark.parametrize("attack", SQL)
async def test_sql_in_ids_and_query_params_is_inert(api: Api, attack: str) -> None:
    by_id = await api.client.get(f"/v1/organisations/{attack}", headers=api.admin)
    search = await api.client.get("/v1/organisations", params={"q": attack}, headers=api.admin)
    country = await api.client.get(
        "/v1/organisations", params={"country": attack}, headers=api.admin
    )
    register = await api.client.post(
        "/v1/organisations", json={**KHARKIV, "organisation_id": attack}, headers=api.admin
    )
    for response in (by_id, country, register):
        assert_4xx_problem(response, 400, 404, 422)
    assert search.status_code == 200 and search.json()["items"] == []
    assert await api.count() == 0, "nothing stored"
    assert await api.count("api_keys") == 1, "the tables are still there, untouched"
    _record(f"sql {attack}", [by_id.status_code, search.status_code, register.status_code])


@pytest.mark.once
@pytest.mark.parametrize("header", ["X-Correlation-ID", "Idempotency-Key"])
async def test_cr_lf_in_headers_never_reaches_a_response_header_or_the_log(
    api: Api, header: str
) -> None:
    # httpx refuses CR/LF in header values itself, so send them through the raw ASGI scope
    injected = "abc\r\nSet-Cookie: owned=1"
    app = api.client._transport.app  # type: ignore[attr-defined]
    answer = await asgi.request(
        app,
        "POST",
        "/v1/organisations",
        headers=[
            (b"authorization", api.admin["Authorization"].encode()),
            (header.lower().encode(), injected.encode()),
        ],
        body=json.dumps(KHARKIV).encode(),
    )
    status = answer.status
    assert 0 < status < 500
    for name, value in answer.headers:
        assert b"\r" not in value and b"\n" not in value, (name, value)
        assert name.lower() != b"set-cookie"
    conn = await asyncpg.connect(api.url)
    try:
        stored = await conn.fetchval("SELECT metadata::text FROM events")
    finally:
        await conn.close()
    assert stored is None or "\r\n" not in json.loads(stored).get("correlation_id", "")
    _record(f"crlf {header}", status)


@pytest.mark.once
async def test_a_key_over_its_rate_limit_gets_429_problem_with_retry_after(pg_server: str) -> None:
    async with fresh_database(pg_server) as url:
        app = create_app(settings_for(url, rate_limit_per_second=1, rate_limit_burst=5))
        # no time passes for the limiter: what it answers does not depend on the machine's speed
        app.state.ctx.rate_limiter.clock = ManualClock()
        async with app.router.lifespan_context(app):
            member = await issue_key(url, organisation="lille", roles=[Role.MEMBER])
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"Authorization": f"Bearer {member}"}
                answers = [
                    await client.get("/v1/organisations", headers=headers) for _ in range(20)
                ]
    statuses = [a.status_code for a in answers]
    limited = [a for a in answers if a.status_code == 429]
    assert statuses == [200] * 5 + [429] * 15
    for answer in limited:
        assert answer.headers["content-type"] == PROBLEM
        assert int(answer.headers["retry-after"]) >= 1
    _record("rate-limit", {"200": statuses.count(200), "429": len(limited)})


def _fresh() -> bytes:
    return str(uuid.uuid4()).encode()


def _with(headers: list[tuple[str, bytes]], **changes: bytes | None) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in headers if k not in changes]
    return kept + [(k, v) for k, v in changes.items() if v is not None]


@pytest.mark.once
async def test_hostile_kafka_messages_are_dead_lettered_or_quarantined_and_a_replay_is_applied_once(
    rig: Rig,
) -> None:
    topic = rig.registry.topic("registry")
    await register(rig, "bucha", "Bucha")
    stop, tasks = await running(rig, rig.relay, rig.runner)
    try:

        async def bucha_arrived() -> bool:
            return "bucha" in await directory(rig)

        await wait_for(bucha_arrived)
        first = (await read_topic(rig.bootstrap, topic, expect=1))[0]
        good = list(first.headers)
        value = first.value or b""
        overwrite = json.dumps({**json.loads(value), "name": "Hacked", "country": "RU"}).encode()
        unreadable: dict[bytes, tuple[bytes, list[tuple[str, bytes]]]] = {
            b"not-json": (b"\xff\xfe not json", good),
            b"json-list": (b"[1, 2, 3]", good),
            b"no-id": (value, _with(good, ce_id=None)),
            b"id-not-uuid": (value, _with(good, ce_id=b"'; DROP TABLE inbox; --")),
            b"position-not-int": (value, _with(good, ce_position=b"abc")),
            b"time-not-time": (value, _with(good, ce_time=b"yesterday")),
        }
        forged: dict[bytes, tuple[bytes, list[tuple[str, bytes]]]] = {
            b"oversized": (b"{" + b"x" * 500_000, good),
            # Bucha overwritten at the next position, before the real event there
            b"next-position": (overwrite, _with(good, ce_id=_fresh(), ce_position=b"2")),
            b"far-future": (
                value,
                _with(good, ce_id=_fresh(), ce_position=b"1000000000", ce_chainhash=b"0" * 64),
            ),
            b"spoofed-source": (
                overwrite,
                _with(good, ce_id=_fresh(), ce_position=b"2", ce_source=b"/twinaid/shipments"),
            ),
            b"unsigned": (value, _with(good, ce_signature=None)),
        }
        for key, (data, headers) in {**unreadable, **forged}.items():
            await produce(rig.bootstrap, topic, value=data, key=key, headers=headers)
        # the broker hands the valid event over again, from another source: the topic decides
        replayed = _with(good, ce_source=b"/evil/registry")
        await produce(rig.bootstrap, topic, value=first.value, key=first.key, headers=replayed)
        await register(rig, "irpin", "Irpin")

        async def all_seen() -> bool:
            return (
                "irpin" in await directory(rig)
                and rig.runner.dead >= len(unreadable)
                and rig.runner.quarantined >= len(forged)
            )

        await wait_for(all_seen, timeout=60)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with rig.pledges_db.connection() as conn:
        dead = await conn.fetch("SELECT key, reason FROM dead_letters ORDER BY id")
        held = await conn.fetch("SELECT key, reason, authentic FROM quarantine ORDER BY id")
        inbox = await conn.fetchval("SELECT count(*) FROM inbox")
    assert sorted(bytes(d["key"]) for d in dead) == sorted(unreadable)
    assert all(d["reason"] for d in dead), "each dead letter says why"
    assert sorted(bytes(q["key"]) for q in held) == sorted(forged)
    reasons = {bytes(q["key"]): q["reason"] for q in held}
    assert reasons[b"oversized"].startswith("oversize: 500001 bytes")
    assert reasons[b"unsigned"] == "not signed"
    for key in (b"next-position", b"far-future", b"spoofed-source"):
        assert "chain hash does not match" in reasons[key]
    assert not any(q["authentic"] for q in held)
    assert await directory(rig) == {"bucha": "Bucha", "irpin": "Irpin"}, "nothing else changed"
    assert inbox == 2 and rig.runner.applied == 2, "the replayed event was applied once"
    _record(
        "kafka",
        {
            "dead_lettered": len(dead),
            "quarantined": len(held),
            "applied": rig.runner.applied,
            "inbox": inbox,
        },
    )
