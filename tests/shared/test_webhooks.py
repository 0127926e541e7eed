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
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook, WebhookVerificationError

from services.shipments import subscriptions
from services.shipments import webhook_access as shipments_access
from services.shipments.app import create_app
from shared import webhook_addresses, webhook_dispatch
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
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    tls: dict[str, str] = field(default_factory=dict)  # uvicorn's ssl_certfile, ssl_keyfile
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
        await asyncio.sleep(self.delays.get(path, 0))
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
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            interface="asgi3",
            **self.tls,  # type: ignore[arg-type]
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
    dispatcher: webhook_dispatch.Dispatcher

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
            dispatcher = webhook_dispatch.Dispatcher(
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

        async def recorded() -> bool:  # the last answer received is recorded after it
            answer = await stack.get("lille", Role.MEMBER, log_path)
            return bool(answer.json()["after_position"] == planned[-1][0])

        await until(recorded)
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
    # the reason only: the connection's details (addresses, resolver text) stay in the logs
    assert {d["error"] for d in failed} == {"connection failed"}
    assert all(d["status_code"] is None for d in failed)
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
            "event_types.0",
        ),
        ({"url": "https://partner.example/hook", "event_types": ["Not A Type"]}, "event_types.0"),
        ({"url": "https://partner.example/hook", "from_position": 99}, "from_position"),
        ({"url": "https://partner.example/hook", "secret": "mine"}, "secret"),
        ({"url": "https://partner.example/\x01"}, "url"),
        ({"url": "https://" + "a" * 64 + ".partner.example/hook"}, "url"),
        ({"url": "http://[64:ff9b::7f00:1]/hook"}, "url"),
        ({"url": "http://[::127.0.0.1]/hook"}, "url"),
        ({"url": "http://[2002:a00:7::1]/hook"}, "url"),
        ({"url": "https://partner.example/\x00"}, "url"),
        ({"url": "https://partner.example/\ud800"}, "url"),
        ({"url": "https://partner.example/hook", "description": "a\x00b"}, "description"),
        ({"url": "https://partner.example/hook", "description": "a\udc00b"}, "description"),
        ({"url": "https://partner.example/hook", "streams": ["convoy-\x00"]}, "streams.0"),
        ({"url": "https://partner.example/hook", "streams": ["convoy-\ud800"]}, "streams.0"),
    ],
)
async def test_a_bad_subscription_is_refused_with_a_problem_and_stores_nothing(
    stack: Stack, body: dict[str, Any], name: str
) -> None:
    headers = {**await stack.api.as_("lille", Role.MEMBER), "content-type": "application/json"}
    # JSON escapes (\u0000, \ud800): NUL and lone surrogates reach the server as sent
    answer = await stack.api.client.post("/v1/webhooks", content=json.dumps(body), headers=headers)
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
    # a subscription of a key that reads only its organisation's records: the organisation's
    shown = await stack.get(
        "lille", Role.MEMBER, f"/v1/webhooks/{mine['subscription_id']}/deliveries"
    )
    assert shown.status_code == 200 and shown.json()["items"] == []
    # an administrator (who reads any organisation's records) has its log to itself too
    administered = await stack.subscribe("lille", Role.REGISTRY_ADMIN, "/lille-admin")
    admin_log = f"/v1/webhooks/{administered['subscription_id']}/deliveries"
    assert (await stack.get("lille", Role.MEMBER, admin_log)).status_code == 404
    assert (await stack.get("lille", Role.REGISTRY_ADMIN, admin_log)).status_code == 200
    assert (await stack.get("lille", Role.AUDITOR, admin_log)).status_code == 200


# -- addresses (no database) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
        "[64:ff9b::a00:7]",  # NAT64 of 10.0.0.7
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
        "[64:ff9b:1::808:808]",  # local-use NAT64: refused whatever it holds
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[2002:c0a8:101::1]",  # 6to4 of 192.168.1.1
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
        "[::127.0.0.1]",  # IPv4-compatible
        "[::10.0.0.7]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
    ],
)
def test_an_ipv6_address_carrying_a_private_ipv4_one_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="not a public address"):
        webhook_addresses.check_url(f"https://{host}/hook", allowed_hosts=[])


@pytest.mark.parametrize(
    "host", ["[64:ff9b::808:808]", "[2002:808:808::1]", "[::ffff:8.8.8.8]", "[2606:4700::1111]"]
)
def test_an_ipv6_address_carrying_a_public_ipv4_one_is_accepted(host: str) -> None:
    assert webhook_addresses.check_url(f"https://{host}/hook", allowed_hosts=[])


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/\x01",
        "https://example.com/\x7f",
        "https://" + "a" * 64 + ".example.com/hook",
        "https://exa mple.com/hook",
        "https://a..b.example/hook",
    ],
)
def test_a_url_httpx_or_a_resolver_would_not_take_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"not a valid URL|host name is not valid"):
        webhook_addresses.check_url(url, allowed_hosts=[])


# -- delivery limits, addresses, errors -----------------------------------------------------------


async def subscription(stack: Stack, sid: str) -> asyncpg.Record:
    conn = await asyncpg.connect(stack.api.url)
    try:
        row: asyncpg.Record = await conn.fetchrow(
            "SELECT * FROM webhook_subscriptions WHERE subscription_id = $1", sid
        )
        return row
    finally:
        await conn.close()


async def test_a_url_no_delivery_can_take_fails_its_own_attempts_not_the_dispatcher(
    stack: Stack,
) -> None:
    """URLs stored before the checks refused them (control characters; a label over 63
    characters, which the resolver's IDNA codec refuses): each attempt fails, logged with a
    generic reason, its lease released; the other subscription of the round is delivered."""
    await stack.receiver.start()
    good = await stack.subscribe("kharkiv", Role.MEMBER, "/kharkiv")
    bad = [await stack.subscribe("lille", Role.LOGISTICS, f"/bad{i}") for i in (1, 2)]
    urls = ["https://partner.example/\x01", "http://" + "a" * 64 + ".partner.example/hook"]
    conn = await asyncpg.connect(stack.api.url)
    try:
        for sub, url in zip(bad, urls, strict=True):
            await conn.execute(
                "UPDATE webhook_subscriptions SET url = $2 WHERE subscription_id = $1",
                sub["subscription_id"],
                url,
            )
    finally:
        await conn.close()
    await stack.api.plan("c1")
    await stack.seal()
    assert await stack.dispatcher.round() == 3
    assert [r.body["data"]["stream_id"] for r in stack.receiver.at("/kharkiv")] == ["convoy-c1"]
    for sub in bad:
        row = await subscription(stack, sub["subscription_id"])
        assert row["last_error"] == "delivery failed" and row["attempts"] == 1
        assert row["leased_until"] is None
    assert (await subscription(stack, good["subscription_id"]))["leased_until"] is None


async def test_a_slow_receiver_does_not_hold_another_organisations_deliveries(
    stack: Stack,
) -> None:
    """Lille's receiver takes 0.3 s an event (under the timeout): 8 events hold its
    subscription 2.4 s. Meanwhile an event for Kharkiv's subscriber goes out at once, not at
    the end of Lille's batch; Lille's claim stops at its budget (1 s) and is taken up again."""
    await stack.receiver.start()
    stack.receiver.delays["/slow"] = 0.3
    await stack.subscribe("lille", Role.LOGISTICS, "/slow")
    await stack.subscribe("kharkiv", Role.MEMBER, "/fast")
    for n in range(8):
        await stack.api.plan(f"c{n}")
    await stack.seal()
    settings = stack.settings.model_copy(update={"webhook_timeout": 1.0})
    dispatcher = webhook_dispatch.Dispatcher(
        service="shipments",
        settings=settings,
        db=stack.dispatcher.db,
        access=shipments_access.seen,
        budget_s=1.0,
    )
    assert dispatcher.lease_s > dispatcher.budget_s + settings.webhook_timeout
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await until(lambda: len(stack.receiver.at("/fast")) == 8)
        await stack.api.plan("c8")
        await stack.seal()
        sealed = loop.time()
        await until(lambda: len(stack.receiver.at("/fast")) == 9)
        waited = loop.time() - sealed
        slow_then = len(stack.receiver.at("/slow"))
        await until(lambda: len(stack.receiver.at("/slow")) == 9)
    finally:
        stop.set()
        await running
    assert waited < 1.0, waited
    assert slow_then < 9  # Lille's deliveries were still going on
    got = [r.body["data"]["stream_id"] for r in stack.receiver.at("/slow")]
    assert got == [f"convoy-c{n}" for n in range(9)]  # in order, across claims


async def test_an_attempt_ends_at_the_timeout_even_if_the_receiver_dribbles(
    stack: Stack,
) -> None:
    """A receiver sending its answer's headers a byte every 0.1 s (each read within any read
    timeout) is cut at WEBHOOK_TIMEOUT all told, a failed attempt saying `timed out`."""

    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(50):
                if reader.at_eof():  # the dispatcher hung up
                    break
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        writer.close()

    server = await asyncio.start_server(dribble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    answer = await stack.api.client.post(
        "/v1/webhooks",
        json={"url": f"http://127.0.0.1:{port}/dribble"},
        headers=await stack.api.as_("lille", Role.LOGISTICS),
    )
    assert answer.status_code == 201, answer.text
    await stack.api.plan("c1")
    await stack.seal()
    settings = stack.settings.model_copy(update={"webhook_timeout": 0.5})
    dispatcher = webhook_dispatch.Dispatcher(
        service="shipments", settings=settings, db=stack.dispatcher.db, access=shipments_access.seen
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        assert await dispatcher.round() == 1
    finally:
        took = loop.time() - started
        await dispatcher.http.aclose()
        server.close()
    assert took < 2.0, took
    log = (
        await stack.get(
            "lille", Role.MEMBER, f"/v1/webhooks/{answer.json()['subscription_id']}/deliveries"
        )
    ).json()["items"]
    assert [(d["outcome"], d["error"]) for d in log] == [("failed", "timed out")]
    assert log[0]["duration_ms"] < 1500


@dataclass
class Resolver:
    """A DNS answer per name (what a name server says), counting the questions."""

    answers: dict[str, list[str] | OSError]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        answer = self.answers[host]
        if isinstance(answer, OSError):
            raise answer
        return answer


async def test_a_delivery_goes_to_the_address_checked_and_names_are_resolved_once(
    stack: Stack,
) -> None:
    """The dispatcher resolves each name once per attempt, checks every address, and connects
    to the one checked, with the URL's Host: `hooks.partner.test` (which no system resolver
    knows, allowed here to stand for a partner's public name) reaches the receiver on
    127.0.0.1 only through the dispatcher's own answer; a name answering 127.0.0.1 without
    being allowed is refused before any connection, and a name that does not resolve fails;
    the subscriber sees the reason only, never the resolver's text or the address."""
    await stack.receiver.start()
    port = stack.receiver.port
    resolver = Resolver(
        {
            "hooks.partner.test": ["127.0.0.1"],
            "rebind.partner.test": ["127.0.0.1"],
            "gone.partner.test": OSError("[Errno -2] Name or service not known: ns1.corp.internal"),
        }
    )
    settings = stack.settings.model_copy(
        update={"webhook_allowed_hosts": ["127.0.0.1", "hooks.partner.test"]}
    )
    dispatcher = webhook_dispatch.Dispatcher(
        service="shipments",
        settings=settings,
        db=stack.dispatcher.db,
        access=shipments_access.seen,
        resolve=resolver,
    )
    subs = {}
    for name in ("hooks", "rebind", "gone"):
        answer = await stack.api.client.post(
            "/v1/webhooks",
            json={"url": f"http://{name}.partner.test:{port}/{name}"},
            headers=await stack.api.as_("lille", Role.LOGISTICS),
        )
        assert answer.status_code == 201, answer.text
        subs[name] = answer.json()
        stack.receiver.secrets[f"/{name}"] = answer.json()["secret"]
    await stack.api.plan("c1")
    await stack.seal()
    try:
        assert await dispatcher.round() == 3
    finally:
        await dispatcher.http.aclose()
    delivered = stack.receiver.at("/hooks")
    assert len(delivered) == 1 and delivered[0].headers["host"] == f"hooks.partner.test:{port}"
    assert stack.receiver.at("/rebind") == [] and stack.receiver.at("/gone") == []
    assert sorted(resolver.asked) == [
        "gone.partner.test",
        "hooks.partner.test",
        "rebind.partner.test",
    ]
    for name, reason in (("rebind", "address not allowed"), ("gone", "name not resolved")):
        sid = subs[name]["subscription_id"]
        shown = (await stack.get("lille", Role.MEMBER, f"/v1/webhooks/{sid}")).json()
        log = (await stack.get("lille", Role.MEMBER, f"/v1/webhooks/{sid}/deliveries")).json()
        assert shown["last_error"] == reason
        assert [d["error"] for d in log["items"]] == [reason]


def certificate_for(name: str, into: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for `name` it signed: (CA file, certificate file, key file)."""
    now = datetime.now(UTC)

    def made(subject: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        made("test CA", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        made(name, key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = (into / "ca.pem", into / "cert.pem", into / "key.pem")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


async def test_an_https_delivery_to_the_checked_address_verifies_the_urls_name(
    stack: Stack, tmp_path: Path
) -> None:
    """Over https the dispatcher connects to the address it checked (127.0.0.1) and still
    verifies the certificate against the URL's name (sent as SNI): a certificate for
    `hooks.partner.test` passes, and the same server under another name is refused."""
    ca, cert, key = certificate_for("hooks.partner.test", tmp_path)
    receiver = Receiver(free_port(), tls={"ssl_certfile": str(cert), "ssl_keyfile": str(key)})
    await receiver.start()
    names = ("hooks.partner.test", "other.partner.test")
    resolver = Resolver({name: ["127.0.0.1"] for name in names})
    settings = stack.settings.model_copy(update={"webhook_allowed_hosts": list(names)})
    dispatcher = webhook_dispatch.Dispatcher(
        service="shipments",
        settings=settings,
        db=stack.dispatcher.db,
        access=shipments_access.seen,
        resolve=resolver,
        http=httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(ca)),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        ),
    )
    subs = {}
    for name in names:
        answer = await stack.api.client.post(
            "/v1/webhooks",
            json={"url": f"https://{name}:{receiver.port}/{name}"},
            headers=await stack.api.as_("lille", Role.LOGISTICS),
        )
        assert answer.status_code == 201, answer.text
        subs[name] = answer.json()["subscription_id"]
        receiver.secrets[f"/{name}"] = answer.json()["secret"]
    await stack.api.plan("c1")
    await stack.seal()
    try:
        assert await dispatcher.round() == 2
    finally:
        await dispatcher.http.aclose()
        await receiver.stop()
    assert len(receiver.at("/hooks.partner.test")) == 1
    assert receiver.at("/other.partner.test") == []
    other = await subscription(stack, subs["other.partner.test"])
    assert other["last_error"] == "connection failed"
