"""The baseline for bench.append: the least a FastAPI + asyncpg route can do to store a write.

`uvicorn --factory bench.naive_app:create_app`. `POST /items` inserts the JSON body as one jsonb
row (one autocommitted statement) and answers 201 with its id. Same pool size as a service
(Settings, 20 by default) and the same command_timeout, same uvicorn, same DATABASE_URL; the
rest of the pool is asyncpg's defaults, as a naive route takes them: each release runs asyncpg's
reset query (a round trip the services' pool skips, shared.db._no_session_reset), and CPython's
garbage collector as it comes (the services tune it: shared/runtime.py). No auth, no
validation model, no event log, no projection, no middleware, no grouping of writes.

NAIVE_AS_SERVICES=1: the same route with the services' process settings, their pool's (no
reset query) and their collector's, for a second, reference ratio (bench.append reports it).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse

from shared import db as dbmod
from shared import runtime
from shared.settings import Settings

TABLE = """
CREATE TABLE IF NOT EXISTS bench_items (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


async def _no_reset(conn: asyncpg.Connection) -> None:
    """The services' choice (shared.db._no_session_reset), for NAIVE_AS_SERVICES=1."""


def create_app() -> FastAPI:
    settings = Settings()
    state: dict[str, asyncpg.Pool] = {}
    as_services = os.environ.get("NAIVE_AS_SERVICES") == "1"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await dbmod.ensure_database(settings.database_url)
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=1,
            max_size=settings.database_pool_size,
            command_timeout=30,
            **({"reset": _no_reset} if as_services else {}),
        )
        await pool.execute(TABLE)
        state["pool"] = pool
        if as_services:
            runtime.tune_gc(settings.gc_gen0_threshold)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="naive baseline", lifespan=lifespan)

    @app.post("/items", status_code=201)
    async def create_item(item: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        item_id = await state["pool"].fetchval(
            "INSERT INTO bench_items (body) VALUES ($1::jsonb) RETURNING id", json.dumps(item)
        )
        return JSONResponse({"id": item_id}, status_code=201)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        await state["pool"].fetchval("SELECT 1")
        return {"status": "ready"}

    return app
