"""A route sends a command (shared/web.py `write`): its handler runs in a PostgresUnitOfWork
on the write's own transaction, with the service's projections, Idempotency-Key and race
retries as for any write. Real PostgreSQL, the app behind ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Role
from shared.codec import Event, EventCodec
from shared.commands import Command, Handlers
from shared.errors import Conflict
from shared.events import RecordedEvent
from shared.projections import Projection
from shared.repository import PostgresUnitOfWork, Repository, UnitOfWork
from shared.testing import fresh_database, issue_key
from shared.web import Caller, Ctx, create_app, write
from tests.conftest import settings_for

pytestmark = pytest.mark.once  # plain SQL, the tables tested on both versions by test_migrations


class Opened(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.opened"

    name: str
    by: str


@dataclass(frozen=True)
class Account:
    record_id: str
    version: int = 0
    name: str | None = None


def evolve(state: Account, event: Event[Any]) -> Account:
    match event.payload:
        case Opened(name=name):
            return Account(state.record_id, event.stream_version, name)
    return state


ACCOUNTS = Repository(
    stream_type="account", codec=EventCodec([Opened]), initial=Account, evolve=evolve
)
HANDLERS = Handlers("registry")


@dataclass(frozen=True)
class Open(Command):
    account_id: str
    name: str
    organisation: str  # established by the route


@HANDLERS.register(Open)
async def open_account(command: Open, uow: UnitOfWork) -> dict[str, Any]:
    assert isinstance(uow, PostgresUnitOfWork)
    account = await ACCOUNTS.load(uow, command.account_id)
    if account.version:
        raise Conflict(f"account {command.account_id} is already open")
    recorded = await ACCOUNTS.append(
        uow,
        command.account_id,
        expected_version=0,
        events=[Opened(name=command.name, by=command.organisation)],
    )
    if command.name == "refused after appending":
        raise Conflict("changed its mind")  # the transaction goes, events and rows with it
    return {"id": command.account_id, "version": recorded[-1].stream_version}


@dataclass(frozen=True)
class Knock(Command):
    account_id: str


@HANDLERS.register(Knock)
async def knock(command: Knock, uow: UnitOfWork) -> dict[str, Any]:
    account = await ACCOUNTS.load(uow, command.account_id)
    return {"id": command.account_id, "waiting": account.version == 0}


def answered(result: dict[str, Any]) -> int:
    return 202 if result["waiting"] else 200


async def _keep(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute("INSERT INTO opened VALUES ($1, $2)", event.stream_id, event.stream_version)


OPENED = Projection(name="opened", tables=("opened",), handlers={"test.opened": _keep})


class OpenBody(BaseModel):
    name: str = Field(max_length=100)


def router() -> APIRouter:
    routes = APIRouter()

    @routes.post("/accounts/{account_id}", status_code=201)
    async def open_route(
        account_id: str, body: OpenBody, request: Request, ctx: Ctx, caller: Caller
    ) -> JSONResponse:
        command = Open(account_id, body.name, caller.organisation)
        return await write(ctx, request, caller, 201, command)

    @routes.post("/accounts/{account_id}/knock")
    async def knock_route(
        account_id: str, request: Request, ctx: Ctx, caller: Caller
    ) -> JSONResponse:
        return await write(ctx, request, caller, answered, Knock(account_id))

    return routes


@dataclass
class Client:
    http: httpx.AsyncClient
    conn: asyncpg.Connection
    headers: dict[str, str]


@pytest.fixture
async def client(pg_server: str) -> AsyncIterator[Client]:
    async with fresh_database(pg_server) as url:
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE opened (stream_id text, stream_version int)")
        app = create_app(
            service="registry",
            settings=settings_for(url, rate_limit_per_second=0),
            routers=[router()],
            schema=(),
            title="test",
            handlers=HANDLERS,
            projections=[OPENED],
        )
        try:
            async with app.router.lifespan_context(app):
                token = await issue_key(url, organisation="lille", roles=[Role.REGISTRY_ADMIN])
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    yield Client(http, conn, {"Authorization": f"Bearer {token}"})
        finally:
            await conn.close()


async def test_a_routes_command_runs_its_handler_in_the_writes_transaction(client: Client) -> None:
    answer = await client.http.post("/accounts/a", json={"name": "Lille"}, headers=client.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"id": "a", "version": 1} and answer.headers["ETag"] == '"1"'
    stored = await client.conn.fetch("SELECT stream_id, data, metadata FROM events")
    assert [r["stream_id"] for r in stored] == ["account-a"]
    assert '"by":"lille"' in stored[0]["data"].replace(" ", "")
    assert '"organisation":"lille"' in stored[0]["metadata"].replace(" ", "")
    assert [tuple(r) for r in await client.conn.fetch("SELECT * FROM opened")] == [("account-a", 1)]
    # a refusal of the handler is the problem it names
    again = await client.http.post("/accounts/a", json={"name": "Lille"}, headers=client.headers)
    assert again.status_code == 409 and "already open" in again.json()["detail"]


async def test_a_handler_that_fails_after_appending_leaves_nothing(client: Client) -> None:
    body = {"name": "refused after appending"}
    answer = await client.http.post("/accounts/b", json=body, headers=client.headers)
    assert answer.status_code == 409 and answer.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert await client.conn.fetchval("SELECT count(*) FROM events") == 0
    assert await client.conn.fetchval("SELECT count(*) FROM opened") == 0


async def test_an_idempotency_key_replays_a_commands_first_answer(client: Client) -> None:
    headers = {**client.headers, "Idempotency-Key": "open-c-once"}
    first = await client.http.post("/accounts/c", json={"name": "Kharkiv"}, headers=headers)
    second = await client.http.post("/accounts/c", json={"name": "Kharkiv"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() == {"id": "c", "version": 1}
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await client.conn.fetchval("SELECT count(*) FROM events") == 1


async def test_the_answers_status_may_depend_on_the_outcome(client: Client) -> None:
    waiting = await client.http.post("/accounts/d/knock", headers=client.headers)
    assert (waiting.status_code, waiting.json()) == (202, {"id": "d", "waiting": True})
    await client.http.post("/accounts/d", json={"name": "Lviv"}, headers=client.headers)
    opened = await client.http.post("/accounts/d/knock", headers=client.headers)
    assert (opened.status_code, opened.json()) == (200, {"id": "d", "waiting": False})
