"""The API answers without leaving reference cycles, which is what lets a service process raise
CPython's young-generation GC threshold (shared/runtime.py): garbage that reference counting
frees needs no collector, so fewer collections lose nothing. A change that made each request
leave a cycle (an exception kept with its traceback, a closure that refers to itself) fails
here, and would make the rarer collections longer.

Requests go straight to the ASGI app, real PostgreSQL behind it; no HTTP client, whose own
response objects are cyclic."""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI

from services.registry.app import create_app
from shared import db as dbmod
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests import asgi
from tests.conftest import settings_for

WAVES = 5
AT_ONCE = 32  # as the append benchmark's clients: registrations are grouped


async def call(
    app: FastAPI, method: str, path: str, headers: dict[str, str], body: Any = None
) -> int:
    """One request through the app's ASGI interface; its status."""
    answer = await asgi.request(
        app,
        method,
        path,
        headers=[(k.lower().encode(), v.encode()) for k, v in headers.items()],
        body=b"" if body is None else json.dumps(body).encode(),
    )
    return answer.status


class Registry:
    def __init__(self, app: FastAPI, admin: str) -> None:
        self.app = app
        self.admin = {"Authorization": f"Bearer {admin}"}

    def register(self, slug: str, name: str, **headers: str) -> Awaitable[int]:
        body = {"organisation_id": slug, "name": name, "kind": "municipality", "country": "UA"}
        return call(self.app, "POST", "/v1/organisations", {**self.admin, **headers}, body)


@pytest.fixture
async def registry(pg_server: str) -> AsyncIterator[Registry]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = create_app(settings_for(url, rate_limit_per_second=0))
        async with app.router.lifespan_context(app):
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            registry = Registry(app, admin)
            # first use of every path (caches, prepared statements, the group commit)
            warm = [registry.register(f"hromada-{i}", f"Hromada {i}") for i in range(AT_ONCE)]
            assert set(await asyncio.gather(*warm)) == {201}
            yield registry


Case = Callable[[Registry, int], Awaitable[int]]
CASES: dict[str, tuple[Case, int]] = {
    "registrations, grouped": (lambda r, i: r.register(f"rada-{i}", f"Rada {i}"), 201),
    "registrations with an Idempotency-Key": (
        lambda r, i: r.register(f"keyed-{i}", f"Keyed {i}", **{"Idempotency-Key": f"key-{i}"}),
        201,
    ),
    "the same Idempotency-Key again": (
        lambda r, i: r.register(f"keyed-{i}", f"Keyed {i}", **{"Idempotency-Key": f"key-{i}"}),
        201,
    ),
    "namesakes refused": (lambda r, i: r.register(f"other-{i}", f"Hromada {i % AT_ONCE}"), 409),
    "bodies refused": (
        lambda r, i: call(r.app, "POST", "/v1/organisations", r.admin, {"name": i}),
        422,
    ),
    "searches": (lambda r, i: call(r.app, "GET", "/v1/organisations", r.admin), 200),
    "no API key": (lambda r, i: call(r.app, "GET", "/v1/organisations", {}), 401),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_requests_leave_no_reference_cycles(registry: Registry, case: str) -> None:
    run, expected = CASES[case]
    if case == "the same Idempotency-Key again":  # the first answers, stored
        first = CASES["registrations with an Idempotency-Key"][0]
        await asyncio.gather(*(first(registry, i) for i in range(WAVES * AT_ONCE)))
    statuses: Counter[int] = Counter()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage, to name it
    try:
        for wave in range(WAVES):
            batch = range(wave * AT_ONCE, (wave + 1) * AT_ONCE)
            statuses.update(await asyncio.gather(*(run(registry, i) for i in batch)))
        gc.collect()
        found = Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert statuses == {expected: WAVES * AT_ONCE}
    # a cycle a request leaves at least one object a request; the loop may leave the odd one
    assert sum(found.values()) < WAVES * AT_ONCE / 10, found.most_common(10)


async def test_an_api_process_tunes_its_collector_when_it_starts(pg_server: str) -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 11, 12)
        async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
            app = create_app(settings_for(url, gc_gen0_threshold=12_345))
            assert gc.get_threshold() == (700, 11, 12)  # nothing happens before start-up
            async with app.router.lifespan_context(app):
                assert gc.get_threshold() == (12_345, 11, 12)
                assert gc.get_freeze_count() > 0  # start-up's objects are out of its way
    finally:
        gc.set_threshold(*before)
