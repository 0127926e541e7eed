"""The convoy board in Debian's chromium (`make browser`), driven by Playwright, on the real
stack: three APIs and three workers as processes, on fresh PostgreSQL databases and the test
broker, loaded with the registry, pledges and shipments demo data through the APIs, the APIs
configured as `make run` configures them (CORS for the board's origin, public URLs)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

from shared import auth, directory
from shared import db as dbmod
from shared.auth import Role
from shared.infra import free_port
from shared.testing import fresh_database
from tests.e2e.processes import Proc, Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVICES = ("registry", "pledges", "shipments")
SCHEMAS = {
    "registry": (dbmod.schema_text("services.registry"),),
    "pledges": (directory.SCHEMA, dbmod.schema_text("services.pledges")),
    "shipments": (directory.SCHEMA, dbmod.schema_text("services.shipments")),
}
# who signs in, as (organisation, roles): the demo's keys
KEYS = {
    "admin": ("twinaid", [Role.REGISTRY_ADMIN]),
    "service": ("twinaid", [Role.SERVICE]),
    "kharkiv": ("kharkiv", [Role.LOGISTICS]),
    "lille": ("lille", [Role.LOGISTICS]),
    "bucha": ("bucha", [Role.MEMBER]),
    "auditor": ("twinaid-audit", [Role.AUDITOR]),
}
REFUSED = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d ")
# docs/screenshots/ is rewritten only when asked: TWINAID_BOARD_SCREENSHOTS=1
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Running:
    board: str
    apis: dict[str, str]
    keys: dict[str, str]
    stack: Stack
    procs: dict[str, Proc]
    timings: dict[str, float] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def post(self, service: str, path: str, who: str, body: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(base_url=self.apis[service], timeout=10) as client:
            response = await client.post(path, json=body, headers=self.headers(who))
        assert response.status_code in (200, 201), response.text
        return response.json()


async def _register_keys(urls: dict[str, str]) -> dict[str, str]:
    """The same tokens in every service's database, as `make run` registers its demo keys."""
    tokens = {who: auth.new_key()[1] for who in KEYS}
    for url in urls.values():
        conn = await asyncpg.connect(url)
        try:
            for who, (organisation, roles) in KEYS.items():
                await auth.issue(conn, organisation=organisation, roles=roles, token=tokens[who])
        finally:
            await conn.close()
    return tokens


def _api(stack: Stack, service: str, db_url: str, port: int, env: dict[str, str]) -> Proc:
    argv = [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.app:create_app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = Proc(f"{service}-api", argv, stack.env(db_url, **env), stack.logs / f"{service}-api.log")
    proc.port = port
    stack.procs.append(proc.start())
    return proc


async def _demo(service: str, url: str, key: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"services.{service}.demo",
        "--url",
        url,
        "--key",
        key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"{service} demo failed:\n{out.decode()}"
    return out.decode()


@pytest.fixture(scope="module")
async def running(
    pg_server: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    started = time.monotonic()
    logs = tmp_path_factory.mktemp("board-stack")
    async with AsyncExitStack() as exits:
        dbs = {
            s: await exits.enter_async_context(fresh_database(pg_server, *SCHEMAS[s]))
            for s in SERVICES
        }
        keys = await _register_keys(dbs)
        stack = Stack(kafka=kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:8]}.", logs=logs)
        exits.callback(stack.stop_all)
        ports = {s: free_port() for s in SERVICES}
        apis = {s: f"http://127.0.0.1:{port}" for s, port in ports.items()}
        # as shared/devstack.py sets them: the board is served by shipments and calls all three
        env = {"CORS_ORIGINS": json.dumps([apis["shipments"]]), "PUBLIC_URLS": json.dumps(apis)}
        procs = [_api(stack, s, dbs[s], ports[s], env) for s in SERVICES]
        for service in SERVICES:
            feeds = {s: url for s, url in apis.items() if s != service}
            stack.worker(service, dbs[service], feeds=feeds, feed_key=keys["service"])
        for proc in procs:
            await asyncio.to_thread(stack.wait_ready, proc, 60)
        ready = time.monotonic()
        for service in SERVICES:
            await _demo(service, apis[service], keys["admin"])
        loaded = time.monotonic()
        yield Running(
            board=f"{apis['shipments']}/board/",
            apis=apis,
            keys=keys,
            stack=stack,
            procs=dict(zip(SERVICES, procs, strict=True)),
            timings={"stack": ready - started, "demo data": loaded - ready},
        )


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no {CHROMIUM}: `make browser` installs Debian's chromium")
    async with async_playwright() as playwright:
        # Debian's chromium, never a downloaded browser
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    page: Page
    running: Running
    errors: list[str] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)

    async def sign_in(self, who: str, *, at: str = "") -> None:
        await self.page.goto(self.running.board + at)
        await self.page.get_by_label("API key").fill(self.running.keys[who])
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.locator("#nav").wait_for(state="visible")

    async def live(self) -> None:
        """Until the live stream is connected."""
        await self.page.locator('#live[data-state="live"]').wait_for(timeout=5000)

    async def screenshot(self, tmp: Path, name: str) -> None:
        await self.page.screenshot(path=str(tmp / name), full_page=True)
        if os.environ.get("TWINAID_BOARD_SCREENSHOTS", "") not in ("", "0"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


@asynccontextmanager
async def opened_tab(browser: Browser, running: Running, **options: Any) -> AsyncIterator[Tab]:
    """A fresh browser context (options: locale, timezone_id, viewport...) whose page must
    log no error and call no host but the stack's."""
    options.setdefault("viewport", {"width": 1280, "height": 900})
    context = await browser.new_context(**options)
    page = await context.new_page()
    page.set_default_timeout(5000)
    opened = Tab(page, running)

    def console(message: ConsoleMessage) -> None:
        # chromium logs every 4xx answer; the tests cause them on purpose (refused keys, bad
        # quantities) and the trace learns from a 404 that an id names no record of a kind
        if message.type == "error" and not REFUSED.match(message.text):
            opened.errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: opened.errors.append(f"uncaught: {error}"))

    def request(sent: Request) -> None:
        if sent.url.startswith(("http:", "https:", "ws:", "wss:")):
            opened.hosts.add(urlsplit(sent.url).hostname or "")

    page.on("request", request)
    try:
        yield opened
    finally:
        await context.close()
    assert opened.errors == [], opened.errors
    # every request went to the stack: no CDN, no map tiles
    assert opened.hosts <= {"127.0.0.1"}, opened.hosts


@pytest.fixture
async def tab(browser: Browser, running: Running) -> AsyncIterator[Tab]:
    async with opened_tab(browser, running) as opened:
        yield opened
