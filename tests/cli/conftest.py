"""The three APIs behind uvicorn on 127.0.0.1, on fresh databases, for the `twinaid` command's
tests: served from a thread of their own, so the command (asyncio.run) runs in the test's."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn

from services import cli, cli_support
from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared import auth
from shared import db as dbmod
from shared.auth import Role
from shared.settings import SERVICES
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import settings_for

APPS = {"registry": registry_app, "pledges": pledges_app, "shipments": shipments_app}
KHARKIV = {
    "organisation_id": "kharkiv",
    "name": "Kharkiv",
    "kind": "municipality",
    "country": "UA",
    "aliases": ["Charkiw", "Kharkov"],
}
LILLE = {"organisation_id": "lille", "name": "Lille", "kind": "municipality", "country": "FR"}
PARTNERSHIP = {
    "partnership_id": "lille-kharkiv",
    "organisations": ["lille", "kharkiv"],
    "kind": "twinning",
}


NEED = {
    "need_id": "kharkiv-generators",
    "kind": "item",
    "category": "generators",
    "description": "Medium-sized generators for essential infrastructure",
    "quantity": "100",
    "unit": "pieces",
    "priority": "critical",
}


@dataclass
class Stack:
    """Running APIs (service n of SERVICES on port_base + n) and what the tests need."""

    port_base: int
    databases: dict[str, str]
    server: str
    admin: str = ""
    auditor: str = ""
    member: str = ""
    service_key: str = ""
    urls: dict[str, str] = field(default_factory=dict)

    def database_flags(self) -> list[str]:
        return [a for s, url in self.databases.items() for a in ("--database", f"{s}={url}")]


def _bind_in_a_row() -> tuple[int, list[socket.socket]]:
    """A port base and the next ports bound, held until uvicorn serves on them."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1] - 1
        bound: list[socket.socket] = []
        try:
            for n in range(1, len(SERVICES) + 1):
                s = socket.socket()
                bound.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", base + n))
        except OSError:
            for s in bound:
                s.close()
            continue
        return base, bound
    raise RuntimeError("no three free ports in a row")


async def _serve(
    stack: Stack, sockets: list[socket.socket], ready: threading.Event, stop: asyncio.Event
) -> None:
    async with AsyncExitStack() as exits:
        for service in SERVICES:
            stack.databases[service] = await exits.enter_async_context(
                fresh_database(stack.server, dbmod.schema_text(f"services.{service}"))
            )
        servers = []
        for n, service in enumerate(SERVICES, start=1):
            app = APPS[service](settings_for(stack.databases[service]))
            await exits.enter_async_context(app.router.lifespan_context(app))
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host="127.0.0.1",
                    port=stack.port_base + n,
                    lifespan="off",
                    log_level="warning",
                )
            )
            task = asyncio.create_task(server.serve(sockets=[sockets[n - 1]]))
            servers.append((server, task))
            stack.urls[service] = f"http://127.0.0.1:{stack.port_base + n}"
        while not all(server.started for server, _ in servers):
            await asyncio.sleep(0.01)
        registry = stack.databases["registry"]
        stack.admin = await issue_key(registry, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        stack.auditor = auth.new_key()[1]  # one auditor key, valid in every service
        for service in SERVICES:
            conn = await asyncpg.connect(stack.databases[service])
            try:
                await auth.issue(
                    conn, organisation="audit", roles=[Role.AUDITOR], token=stack.auditor
                )
            finally:
                await conn.close()
        stack.member = await issue_key(registry, organisation="lille", roles=[Role.MEMBER])
        stack.service_key = await issue_key(registry, organisation="twinaid", roles=[Role.SERVICE])
        headers = {"Authorization": f"Bearer {stack.admin}", "X-Correlation-Id": "pact-1978"}
        async with httpx.AsyncClient(base_url=stack.urls["registry"], headers=headers) as http:
            for body in (LILLE, KHARKIV):
                response = await http.post("/v1/organisations", json=body)
                assert response.status_code == 201, response.text
            response = await http.post("/v1/partnerships", json=PARTNERSHIP)
            assert response.status_code == 201, response.text
        conn = await asyncpg.connect(registry)
        try:
            await seal_everything(conn)
        finally:
            await conn.close()
        # the pledges service learns the organisations from the registry's feed, then Kharkiv
        # posts a need (for the IATI export)
        config = cli_support.Config(urls=stack.urls, api_key=stack.service_key)
        await cli.catch_up("pledges", stack.databases["pledges"], ["registry"], config)
        kharkiv = await issue_key(
            stack.databases["pledges"], organisation="kharkiv", roles=[Role.MEMBER]
        )
        async with httpx.AsyncClient(base_url=stack.urls["pledges"]) as http:
            response = await http.post(
                "/v1/needs", json=NEED, headers={"Authorization": f"Bearer {kharkiv}"}
            )
            assert response.status_code == 201, response.text
        ready.set()
        try:
            await stop.wait()
        finally:
            for server, _ in servers:
                server.should_exit = True
            await asyncio.gather(*(task for _, task in servers))


@pytest.fixture(scope="package")
def stack(pg_server: str) -> Iterator[Stack]:
    base, sockets = _bind_in_a_row()
    made = Stack(port_base=base, databases={}, server=pg_server)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(_serve(made, sockets, ready, stop))
        except BaseException as exc:  # reported to the test session below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="cli-test-apis", daemon=True)
    thread.start()
    assert ready.wait(120), "the APIs did not start"
    if failed:
        raise failed[0]
    try:
        yield made
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()
        for bound in sockets:
            bound.close()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting from the machine running the tests: no config file, no twinaid variables."""
    for name in list(os.environ):
        if name.startswith("TWINAID_") or name in ("DATABASE_URL", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    return monkeypatch


@dataclass
class Ran:
    code: int
    out: str
    err: str


def twinaid(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    """`twinaid ARGV` in this process: its exit code and what it printed."""
    capsys.readouterr()
    try:
        code = cli.main(list(argv))
    except SystemExit as stopped:  # as the interpreter would show it
        code = stopped.code if isinstance(stopped.code, int) else 1
        if isinstance(stopped.code, str):
            print(stopped.code, file=sys.stderr)
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)
