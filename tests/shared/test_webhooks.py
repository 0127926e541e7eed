"""Webhooks (shared/webhooks.py) end to end on the shipments service: its real app and database,
its real dispatcher, and a real receiving HTTP server on 127.0.0.1 that checks every signature
with the `standardwebhooks` library. A receiver down for a while gets every event in order once
it is back; a subscriber never gets what its key could not read through the API (two
organisations, each with its own convoy); replay sends again from a position."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

from services.shipments import subscriptions
from services.shipments import webhook_access as shipments_access
from services.shipments.app import create_app
from shared import webhooks
from shared.auth import Role
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.metrics import Metrics
from shared.testing import fresh_database, seal_everything
from tests.conftest import settings_for
from tests.shipments.conftest import SCHEMAS, ShipmentsApi

pytestmark = pytest.mark.once  # plain SQL, tested on both PostgreSQL versions by test_migrations

FAST: dict[str, object] = {
    "webhook_allowed_hosts": ["127.0.0.1"],
    "webhook_poll_interval": 0.05,
    "webhook_timeout": 2.0,
    "webhook_retry_base": 0.05,
    "webhook_retry_max": 0.2,
    "webhook_failing_after": 0.3,
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that accepts a delivery only with a valid signature (checked
    by the standardwebhooks library with the secret registered for its path)."""

    port: int
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        try:
            payload = Webhook(self.secrets[path]).verify(body, headers)
        except (KeyError, WebhookVerificationError) as exc:
            self.refused.append(f"{path}: {exc!r}")
            status = 401
        else:
            self.received.append(Received(path, headers, payload))
            status = 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    api: ShipmentsApi
    settings: Any
    receiver: Receiver
    dispatcher: webhooks.Dispatcher

    async def subscribe(
        self, organisation: str, role: Role, path: str, **fields: Any
    ) -> dict[str, Any]:
        body = {"url": self.receiver.url(path), **fields}
        answer = await self.api.client.post(
            "/v1/webhooks", json=body, headers=await self.api.as_(organisation, role)
        )
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        self.receiver.secrets[path] = created["secret"]
        return created

    async def seal(self) -> None:
        conn = await asyncpg.connect(self.api.url)
        try:
            await seal_everything(conn)
        finally:
            await conn.close()

    async def positions(self, event_type: str) -> list[tuple[int, str, str]]:
        """(position, event id, stream id) of every sealed event of a type, in log order."""
        conn = await asyncpg.connect(self.api.url)
        try:
            rows = await conn.fetch(
                "SELECT c.position, e.event_id, e.stream_id FROM event_chain c"
                " JOIN events e USING (event_id) WHERE e.event_type = $1 ORDER BY c.position",
                event_type,
            )
        finally:
            await conn.close()
        return [(r["position"], str(r["event_id"]), r["stream_id"]) for r in rows]

    async def get(self, organisation: str, role: Role, path: str) -> httpx.Response:
        return await self.api.client.get(path, headers=await self.api.as_(organisation, role))


async def until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


@pytest.fixture
async def stack(pg_server: str) -> AsyncIterator[Stack]:
    async with fresh_database(pg_server, *SCHEMAS) as url:
        settings = settings_for(url, "127.0.0.1:1", **FAST)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            db = Database(url, max_size=4)
            await db.open()
            runner = ConsumerRunner(
                service="shipments",
                settings=settings,
                db=db,
                metrics=Metrics("shipments-test"),
                handlers=subscriptions.HANDLERS,
            )
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            receiver = Receiver(free_port())
            dispatcher = webhooks.Dispatcher(
                service="shipments", settings=settings, db=db, access=shipments_access.seen
            )
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    api = ShipmentsApi(client, app, url, runner)
                    await api.register()
                    yield Stack(api, settings, receiver, dispatcher)
            finally:
                await receiver.stop()
                await dispatcher.http.aclose()
                await db.close()


@contextlib.asynccontextmanager
async def dispatching(stack: Stack) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(stack.dispatcher.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_back(
    stack: Stack,
) -> None:
    sub = await stack.subscribe("lille", Role.LOGISTICS, "/lille")
    for convoy_id in ("c1", "c2", "c3"):
        await stack.api.plan(convoy_id)
    await stack.seal()
    planned = await stack.positions("shipments.convoy-planned")
    log_path = f"/v1/webhooks/{sub['subscription_id']}"

    async def failing() -> bool:
        answer = await stack.get("lille", Role.MEMBER, log_path)
        return bool(answer.json()["status"] == "failing")

    async with dispatching(stack):
        # nothing listens on the port: connection refused, retried with backoff
        await until(failing)
        assert stack.receiver.received == []
        await stack.receiver.start()
        await until(lambda: len(stack.receiver.at("/lille")) == 3)
    got = stack.receiver.at("/lille")
    assert [r.body["data"]["position"] for r in got] == [p for p, _, _ in planned]
    assert [r.headers["webhook-id"] for r in got] == [e for _, e, _ in planned]
    assert [r.body["data"]["stream_id"] for r in got] == ["convoy-c1", "convoy-c2", "convoy-c3"]
    assert all(r.body["type"] == "shipments.convoy-planned" for r in got)
    assert stack.receiver.refused == []
    now = (await stack.get("lille", Role.MEMBER, log_path)).json()
    assert now["status"] == "active" and now["attempts"] == 0 and now["last_error"] is None
    assert now["after_position"] == planned[-1][0]
    log = (await stack.get("lille", Role.MEMBER, f"{log_path}/deliveries")).json()["items"]
    failed = [d for d in log if d["outcome"] == "failed"]
    delivered = [d for d in log if d["outcome"] == "delivered"]
    assert len(failed) >= 2 and all(d["position"] == planned[0][0] for d in failed)
    assert [d["attempt"] for d in failed] == list(range(1, len(failed) + 1))
    assert "ConnectError" in failed[0]["error"] and failed[0]["status_code"] is None
    assert [d["position"] for d in delivered] == [p for p, _, _ in planned]
    assert [d["status_code"] for d in delivered] == [204, 204, 204]
    assert delivered[0]["attempt"] == len(failed) + 1


async def test_a_subscriber_receives_only_what_its_key_reads_through_the_api(
    stack: Stack,
) -> None:
    """Lille's convoy c1 (to Kharkiv) and Leeds's convoy c2 (to Bucha): each organisation gets
    its own convoy's events and never the other's, even when it names the other's record in
    its filters; named drivers reach the recipient, not the origin (as the API shows them);
    the auditor, who reads the feed, gets both with their metadata."""
    await stack.receiver.start()
    await stack.subscribe("lille", Role.LOGISTICS, "/lille")
    await stack.subscribe("lille", Role.MEMBER, "/lille-asks-for-c2", streams=["convoy-c2"])
    await stack.subscribe("kharkiv", Role.MEMBER, "/kharkiv", own_records=True)
    await stack.subscribe("leeds", Role.LOGISTICS, "/leeds")
    await stack.subscribe("bucha", Role.AUDITOR, "/auditor")
    await stack.api.plan("c1")
    leeds_plan = {
        "convoy_id": "c2",
        "reference": "Leeds - Bucha vans",
        "origin_id": "leeds",
        "destination_id": "bucha",
        "carrier_id": "leeds",
        "planned_departure": "2022-07-01T06:00:00+01:00",
        "vehicles": [{"registration": "YX22 ABC", "type": "van", "capacity_kg": "1200"}],
        "drivers": [{"name": "Ann Walker", "vehicle": "YX22 ABC"}],
        "occurred_at": "2022-06-20T09:00:00+01:00",
    }
    answer = await stack.api.client.post(
        "/v1/convoys", json=leeds_plan, headers=await stack.api.as_("leeds", Role.LOGISTICS)
    )
    assert answer.status_code == 201, answer.text
    await stack.seal()
    async with dispatching(stack):
        await until(lambda: len(stack.receiver.at("/auditor")) == 2)
        await until(lambda: len(stack.receiver.at("/leeds")) == 1)
        await until(lambda: len(stack.receiver.at("/lille")) == 1)
        await until(lambda: len(stack.receiver.at("/kharkiv")) == 1)
        await asyncio.sleep(0.3)  # a few more rounds: nothing else may come

    def streams(path: str) -> list[str]:
        return [r.body["data"]["stream_id"] for r in stack.receiver.at(path)]

    assert streams("/lille") == ["convoy-c1"]
    assert streams("/kharkiv") == ["convoy-c1"]
    assert streams("/leeds") == ["convoy-c2"]
    assert streams("/lille-asks-for-c2") == []
    assert streams("/auditor") == ["convoy-c1", "convoy-c2"]
    assert stack.receiver.refused == []
    # redacted exactly as the API redacts the convoy for each key
    lille = stack.receiver.at("/lille")[0].body["data"]
    kharkiv = stack.receiver.at("/kharkiv")[0].body["data"]
    assert {d["name"] for d in lille["data"]["drivers"]} == {"(withheld)"}
    assert {d["name"] for d in kharkiv["data"]["drivers"]} == {"Karim Benali", "Olena Marchenko"}
    seen_by_lille = (
        await stack.api.client.get(
            "/v1/convoys/c1/timeline", headers=await stack.api.as_("lille", Role.LOGISTICS)
        )
    ).json()["entries"][0]["data"]
    assert lille["data"] == seen_by_lille
    assert "metadata" not in lille and "hash" not in lille
    auditor = stack.receiver.at("/auditor")[0].body["data"]
    assert auditor["metadata"]["organisation"] == "lille" and len(auditor["hash"]) == 64
    # Leeds's events never went anywhere but to Leeds and the auditor, not even attempted
    conn = await asyncpg.connect(stack.api.url)
    try:
        attempted = await conn.fetch(
            "SELECT s.organisation, d.event_type, e.stream_id FROM webhook_deliveries d"
            " JOIN webhook_subscriptions s USING (subscription_id)"
            " JOIN events e USING (event_id)"
        )
    finally:
        await conn.close()
    by_org = {(r["organisation"], r["stream_id"]) for r in attempted}
    assert ("lille", "convoy-c2") not in by_org and ("kharkiv", "convoy-c2") not in by_org
    assert ("leeds", "convoy-c1") not in by_org


async def test_a_revoked_key_disables_its_subscription(stack: Stack) -> None:
    await stack.receiver.start()
    sub = await stack.subscribe("kharkiv", Role.MEMBER, "/kharkiv")
    token = (await stack.api.as_("kharkiv", Role.MEMBER))["Authorization"].split()[1]
    conn = await asyncpg.connect(stack.api.url)
    try:
        await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", token.split("_")[1]
        )
    finally:
        await conn.close()
    await stack.api.plan("c1")
    await stack.seal()
    await stack.dispatcher.round()
    key = await stack.api.as_("kharkiv", Role.LOGISTICS)  # another key of Kharkiv's
    answer = await stack.api.client.get(f"/v1/webhooks/{sub['subscription_id']}", headers=key)
    assert answer.json()["status"] == "disabled"
    assert "revoked" in answer.json()["last_error"]
    assert await stack.dispatcher.round() == 0
    assert stack.receiver.received == []


async def test_replay_sends_again_from_a_position_in_order(stack: Stack) -> None:
    await stack.receiver.start()
    sub = await stack.subscribe("kharkiv", Role.MEMBER, "/kharkiv", from_position=1)
    for convoy_id in ("c1", "c2", "c3"):
        await stack.api.plan(convoy_id)
    await stack.seal()
    planned = await stack.positions("shipments.convoy-planned")
    async with dispatching(stack):
        await until(lambda: len(stack.receiver.at("/kharkiv")) == 3)
        answer = await stack.api.client.post(
            f"/v1/webhooks/{sub['subscription_id']}/replay",
            json={"from_position": planned[1][0]},
            headers=await stack.api.as_("kharkiv", Role.MEMBER),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["after_position"] == planned[1][0] - 1
        await until(lambda: len(stack.receiver.at("/kharkiv")) == 5)
    ids = [r.headers["webhook-id"] for r in stack.receiver.at("/kharkiv")]
    assert ids == [e for _, e, _ in planned] + [e for _, e, _ in planned[1:]]


# -- the routes ---------------------------------------------------------------------------------


async def test_the_secret_is_shown_once_and_another_organisation_sees_no_subscription(
    stack: Stack,
) -> None:
    created = await stack.subscribe(
        "lille", Role.LOGISTICS, "/lille", event_types=["shipments.convoy-dispatched"]
    )
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # a secret the standard's library reads
    sid = created["subscription_id"]
    own = await stack.get("lille", Role.MEMBER, f"/v1/webhooks/{sid}")
    assert own.status_code == 200 and "secret" not in own.json()
    assert own.json()["event_types"] == ["shipments.convoy-dispatched"]
    listed = (await stack.get("lille", Role.MEMBER, "/v1/webhooks")).json()["items"]
    assert [w["subscription_id"] for w in listed] == [sid]
    assert all("secret" not in w for w in listed)
    assert (await stack.get("leeds", Role.MEMBER, "/v1/webhooks")).json()["items"] == []
    for path in (f"/v1/webhooks/{sid}", f"/v1/webhooks/{sid}/deliveries"):
        answer = await stack.get("leeds", Role.MEMBER, path)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
    leeds = await stack.api.as_("leeds", Role.MEMBER)
    assert (await stack.api.client.delete(f"/v1/webhooks/{sid}", headers=leeds)).status_code == 404
    replay = await stack.api.client.post(
        f"/v1/webhooks/{sid}/replay", json={"from_position": 1}, headers=leeds
    )
    assert replay.status_code == 404
    lille = await stack.api.as_("lille", Role.MEMBER)
    assert (await stack.api.client.delete(f"/v1/webhooks/{sid}", headers=lille)).status_code == 204
    assert (await stack.get("lille", Role.MEMBER, f"/v1/webhooks/{sid}")).status_code == 404
    assert (await stack.get("lille", Role.MEMBER, "/v1/webhooks")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"url": "ftp://127.0.0.1/hook"}, "url"),
        ({"url": "http://10.0.0.7/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest"}, "url"),
        ({"url": "http://[::1]:9/hook"}, "url"),
        ({"url": "http://localhost:9/hook"}, "url"),
        ({"url": "https://user:pw@partner.example/hook"}, "url"),
        ({"url": "https://partner.example:99999/hook"}, "url"),
        (
            {"url": "https://partner.example/hook", "event_types": ["pledges.pledge-made"]},
            "event_types",
        ),
        ({"url": "https://partner.example/hook", "event_types": ["Not A Type"]}, "event_types.0"),
        ({"url": "https://partner.example/hook", "from_position": 99}, "from_position"),
        ({"url": "https://partner.example/hook", "secret": "mine"}, "secret"),
    ],
)
async def test_a_bad_subscription_is_refused_with_a_problem_and_stores_nothing(
    stack: Stack, body: dict[str, Any], name: str
) -> None:
    answer = await stack.api.client.post(
        "/v1/webhooks", json=body, headers=await stack.api.as_("lille", Role.MEMBER)
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert name in [p["name"] for p in problem["invalid_params"]], problem
    assert (await stack.get("lille", Role.MEMBER, "/v1/webhooks")).json()["items"] == []


async def test_a_replay_past_the_head_and_an_unknown_key_are_refused(stack: Stack) -> None:
    sid = (await stack.subscribe("lille", Role.MEMBER, "/lille"))["subscription_id"]
    answer = await stack.api.client.post(
        f"/v1/webhooks/{sid}/replay",
        json={"from_position": 50},
        headers=await stack.api.as_("lille", Role.MEMBER),
    )
    assert (
        answer.status_code == 422 and answer.json()["invalid_params"][0]["name"] == "from_position"
    )
    assert (await stack.api.client.get("/v1/webhooks")).status_code == 401


def test_every_webhook_operation_is_declared_for_partners() -> None:
    """operationIds, typed responses, tags, problem+json errors and an example body."""
    document = create_app(settings_for("postgresql://x@127.0.0.1:1/x")).openapi()
    operations = {
        op["operationId"]: op
        for path, item in document["paths"].items()
        if path.startswith("/v1/webhooks")
        for op in item.values()
    }
    assert set(operations) == {
        "createWebhook",
        "listWebhooks",
        "getWebhook",
        "deleteWebhook",
        "listWebhookDeliveries",
        "replayWebhook",
    }
    for op in operations.values():
        assert op["tags"] == ["webhooks"] and op["description"]
        assert "application/problem+json" in op["responses"]["401"]["content"]
        success = next(c for c in op["responses"] if c.startswith("2"))
        if success != "204":
            assert "$ref" in json.dumps(op["responses"][success]["content"])
    create = document["components"]["schemas"]["WebhookIn"]
    assert create["examples"][0]["url"].startswith("https://")


async def test_an_auditors_delivery_log_is_not_shown_to_the_organisations_other_keys(
    stack: Stack,
) -> None:
    """The delivery log names each event sent: from a subscription of a key that reads the raw
    feed (an auditor's), a member of the same organisation would learn what the feed holds."""
    audited = await stack.subscribe("lille", Role.AUDITOR, "/lille-audit")
    mine = await stack.subscribe("lille", Role.LOGISTICS, "/lille-logistics")
    hidden = f"/v1/webhooks/{audited['subscription_id']}/deliveries"
    refused = await stack.get("lille", Role.MEMBER, hidden)
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await stack.get("lille", Role.AUDITOR, hidden)).status_code == 200
    # a subscription of a key that reads no more than the caller's: its log is the org's
    shown = await stack.get(
        "lille", Role.MEMBER, f"/v1/webhooks/{mine['subscription_id']}/deliveries"
    )
    assert shown.status_code == 200 and shown.json()["items"] == []
