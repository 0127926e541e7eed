"""The baseline for bench.append: the least a FastAPI + asyncpg route can do to store a write.

`uvicorn --factory bench.naive_app:create_app`. `POST /items` inserts the JSON body as one jsonb
row (one autocommitted statement) and answers 201 with its id. Same pool as a service (size from
Settings, 20 by default; same create_pool options as shared.db.Database), same uvicorn, same
DATABASE_URL. No auth, no validation model, no event log, no projection, no middleware.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse

from shared import db as dbmod
from shared.settings import Settings

TABLE = """
CREATE TABLE IF NOT EXISTS bench_items (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def create_app() -> FastAPI:
    settings = Settings()
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await dbmod.ensure_database(settings.database_url)
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=1,
            max_size=settings.database_pool_size,
            command_timeout=30,
        )
        await pool.execute(TABLE)
        state["pool"] = pool
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
