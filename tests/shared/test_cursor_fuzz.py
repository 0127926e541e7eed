"""Hostile cursors and filters on every list route of the three services: never a 5xx.

The routes come from each service's own OpenAPI document: every GET operation without a path
parameter that takes query parameters (the live stream too: its answer is read up to the
response head, then the client goes away). Each query parameter gets hostile values for its
declared type, alone, and the cursor gets garbage, base64 of every wrong JSON shape, and (with
Hypothesis, derandomised) base64 of arbitrary JSON. Each service runs in process on real
PostgreSQL with a little data, called with a key holding every role a person can hold.

Instants out of the sane range on time parameters (year 1, year 9999) are another test's
(issue 16, point 1); here time parameters get values that are not instants at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message

from services.shipments import subscriptions as shipments_subscriptions
from shared.auth import Role
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.metrics import Metrics
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.pledges.conftest import GENERATORS_NEED, generators_pledge, seed_registry
from tests.registry.conftest import KHARKIV, LILLE
from tests.shipments.conftest import ShipmentsApi

PROBLEM = "application/problem+json"
SERVICES = ("registry", "pledges", "shipments")
ROLES = [Role.MEMBER, Role.LOGISTICS, Role.REGISTRY_ADMIN, Role.AUDITOR]
STREAMS = {"/v1/tracking/updates"}  # answers with a never-ending body
# lists whose sort key starts with an instant: the cursor of issue 16, base64 of ["zzz","zzz"],
# gave a 500 on them
SORTED_BY_TIME = {
    "/v1/needs",
    "/v1/pledges",
    "/v1/convoys",
    "/v1/deliveries",
    "/v1/discrepancies",
    "/v1/tracking/in-transit",
    "/v1/webhooks",
    "/v1/reports/needs",
    "/v1/reports/pledges",
}


def b64(value: Any) -> str:
    """A cursor as encode() spells one, around any JSON value (or raw text)."""
    raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


TEXT: list[str | bytes] = [
    "",
    " ",
    "\x00",
    "kharkiv\x00",
    "x" * 10_000,
    "é" * 300,
    "Харків",
    "\U0001d542harkiv",  # a double-struck K
    "\u202ekharkiv",
    "kharkiv\u200b",
    "%",
    "_",
    "\\",
    "'; DROP TABLE events; --",
    "null",
    "[]",
    "-1",
    "1e999",
    "NaN",
    b"\xff\xfe",
    b"\xed\xa0\x80",  # a UTF-16 surrogate, UTF-8 encoded
    b"\xc0\xaf",  # an overlong slash
]
INTEGERS: list[str | bytes] = [
    "-1",
    "0",
    "1.5",
    "1e3",
    "0x10",
    "١٢",  # Arabic-Indic digits
    str(2**63),
    str(-(2**63) - 1),
    "9" * 400,
    "abc",
    "\x00",
    "",
]
BOOLEANS: list[str | bytes] = ["maybe", "2", "-1", "\x00", "", "truee"]
ENUMS: list[str | bytes] = ["nope", "OPEN", "open\x00", "Open ", "", "x" * 5000]
INSTANTS: list[str | bytes] = ["nope", "2024-13-45", "2024-01-01T25:00:00Z", "", "\x00", "1e9"]
RATES: list[str | bytes] = ["EUR=", "=1", "EUR=NaN", "EUR=-1", "EUR=1e400", "EUR=0", "EUR", "\x00"]
CURSORS: list[str | bytes] = [
    "!!!!",
    "%%%",
    "=",
    "a",
    "====",
    "\x00",
    "x" * 501,
    b"\xff",
    b64("not json"),
    b64("\x00"),
    b64(["zzz", "zzz"]),
    b64(["zzz"]),
    b64(["zzz", "zzz", "zzz"]),
    b64([]),
    b64({}),
    b64({"a": 1}),
    b64(None),
    b64(1),
    b64("text"),
    b64([1, 2]),
    b64([None, None]),
    b64([True, False]),
    b64([["a"], {"b": 1}]),
    b64([1e308, -1]),
    b64([2**70, -(2**70)]),
    b64(["2024-01-01T00:00:00", "x"]),  # no offset
    b64(["0001-01-01T00:00:00+14:00", "x"]),  # before year 1 in UTC
    b64(["9999-12-31T23:59:59-14:00", "x"]),  # after year 9999 in UTC
    b64(["2024-01-01T00:00:00+00:00", "\x00"]),
    b64(["\x00", "x"]),
    '["a", "b"]',
    base64.urlsafe_b64encode(b'["\\ud800", "x"]').decode(),  # a lone surrogate
    base64.urlsafe_b64encode(b'["\xff\xfe", "x"]').decode(),  # not UTF-8
    b64(["x" * 300, "y"]),
]


@dataclass
class Service:
    name: str
    app: FastAPI
    headers: list[tuple[bytes, bytes]]
    routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def list_routes(app: FastAPI) -> dict[str, list[dict[str, Any]]]:
    """Every GET operation without path parameters that takes query parameters, with them."""
    routes = {}
    for path, operations in app.openapi()["paths"].items():
        get = operations.get("get")
        parameters = (get or {}).get("parameters", [])
        if get and not any(p["in"] == "path" for p in parameters):
            query = [p for p in parameters if p["in"] == "query"]
            if query:
                routes[path] = query
    return routes


def hostile(parameter: dict[str, Any], components: dict[str, Any]) -> list[str | bytes]:
    """Values a client could send for `parameter`, chosen from its declared type."""
    if parameter["name"] == "cursor":
        return CURSORS
    schema = parameter["schema"]
    options = schema.get("anyOf", [schema])
    kinds = set()
    for option in options:
        if "$ref" in option:
            option = components[option["$ref"].rsplit("/", 1)[1]]
        if "enum" in option or "pattern" in option:
            kinds.add("enum")
        elif option.get("format") in ("date", "date-time"):
            kinds.add("instant")
        elif option.get("type") in ("integer", "number", "boolean", "array", "string"):
            kinds.add(option["type"])
    values: list[str | bytes] = list(TEXT)
    for kind, more in (
        ("integer", INTEGERS),
        ("number", INTEGERS),
        ("boolean", BOOLEANS),
        ("enum", ENUMS),
        ("instant", INSTANTS),
        ("array", RATES),
    ):
        if kind in kinds:
            values += more
    return values


def query(name: str, value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return f"{name}=".encode() + quote(raw, safe="").encode()


@dataclass
class Answer:
    status: int = 0
    content_type: str = ""
    body: bytes = b""


async def get(service: Service, path: str, query_string: bytes) -> Answer:
    """One GET straight through the app's ASGI interface (so any bytes can go in the query);
    the client stays until the answer ends, or only for its head on a stream."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query_string,
        "headers": [(b"host", b"t"), *service.headers],
        "client": ("127.0.0.1", 40000),
        "server": ("t", 80),
        "state": {},
    }
    answer = Answer()
    started = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.content_type = (
                dict(message.get("headers", [])).get(b"content-type", b"").decode()
            )
            if path in STREAMS:
                started.set()
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await asyncio.wait_for(service.app(scope, receive, send), 30)
    return answer


def wrong(answer: Answer, what: str) -> str | None:
    """What is wrong with `answer`: a 5xx, or a 4xx that is not a problem+json."""
    if not 0 < answer.status < 500:
        return f"{what}: {answer.status}"
    if answer.status >= 400:
        if answer.content_type != PROBLEM:
            return f"{what}: {answer.status} as {answer.content_type}"
        problem = json.loads(answer.body)
        if problem.get("status") != answer.status or not problem.get("detail"):
            return f"{what}: {problem}"
    return None


async def _seed(name: str, url: str, app: FastAPI, token: str) -> None:
    """A few records, so filters and cursors meet rows."""
    transport = httpx.ASGITransport(app=app)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth) as c:
        if name == "registry":
            for body in (LILLE, KHARKIV):
                assert (await c.post("/v1/organisations", json=body)).status_code == 201
            proposed = await c.post(
                "/v1/partnerships",
                json={"organisations": ["lille", "kharkiv"], "kind": "twinning"},
            )
            assert proposed.status_code == 201, proposed.text
        elif name == "pledges":
            await seed_registry(url)
            kharkiv = await issue_key(url, organisation="kharkiv", roles=[Role.MEMBER])
            need = await c.post(
                "/v1/needs", json=GENERATORS_NEED, headers={"Authorization": f"Bearer {kharkiv}"}
            )
            assert need.status_code == 201, need.text
            pledge = await c.post("/v1/pledges", json=generators_pledge())
            assert pledge.status_code == 201, pledge.text
        else:
            settings_ = settings_for(url)
            db = Database(url, max_size=2)
            await db.open()
            try:
                runner = ConsumerRunner(
                    service="shipments",
                    settings=settings_,
                    db=db,
                    metrics=Metrics("shipments-fuzz"),
                    handlers=shipments_subscriptions.HANDLERS,
                )
                shipments = ShipmentsApi(c, app, url, runner)
                await shipments.register()
                await shipments.pledge_line()
                await shipments.plan()
                loaded = await shipments.load()
                assert loaded.status_code == 201, loaded.text
            finally:
                await db.close()


@pytest.fixture(scope="module", params=SERVICES)
async def service(request: pytest.FixtureRequest, pg_server: str) -> AsyncIterator[Service]:
    name = request.param
    async with fresh_database(pg_server) as url:
        app = import_module(f"services.{name}.app").create_app(
            settings_for(url, rate_limit_per_second=0)
        )
        async with app.router.lifespan_context(app):
            token = await issue_key(url, organisation="lille", roles=ROLES)
            await _seed(name, url, app, token)
            yield Service(
                name,
                app,
                [(b"authorization", f"Bearer {token}".encode())],
                list_routes(app),
            )


def _cases(service: Service) -> Iterator[tuple[str, str, str | bytes]]:
    components = service.app.openapi()["components"]["schemas"]
    for path, parameters in service.routes.items():
        for parameter in parameters:
            for value in hostile(parameter, components):
                yield path, parameter["name"], value


async def test_every_service_has_list_routes_with_cursors_to_fuzz(service: Service) -> None:
    cursors = paged(service)
    expected = {
        "registry": ["/v1/organisations", "/v1/partnerships", "/v1/webhooks"],
        "pledges": [
            "/v1/needs",
            "/v1/pledges",
            "/v1/reports/needs",
            "/v1/reports/pledges",
            "/v1/reports/totals",
            "/v1/webhooks",
        ],
        "shipments": [
            "/v1/convoys",
            "/v1/deliveries",
            "/v1/discrepancies",
            "/v1/pledge-lines",
            "/v1/tracking/in-transit",
            "/v1/webhooks",
        ],
    }[service.name]
    assert sorted(cursors) == expected
    assert "/v1/events" in service.routes


async def test_no_hostile_query_parameter_on_a_list_route_gives_a_5xx(service: Service) -> None:
    tried, failures = 0, []
    for path, name, value in _cases(service):
        answer = await get(service, path, query(name, value))
        failures.append(wrong(answer, f"{path}?{name}={value!r:.60}"))
        tried += 1
    bad = [f for f in failures if f]
    assert not bad, "\n".join(bad)
    assert tried > 20 * len(service.routes)


def paged(service: Service) -> list[str]:
    return [p for p, ps in service.routes.items() if any(q["name"] == "cursor" for q in ps)]


def text_key(cursor: str | bytes) -> bool:
    """Whether `cursor` holds a list of plain text: a key some list could have made."""
    try:
        text = cursor if isinstance(cursor, str) else cursor.decode()
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        return False
    return isinstance(key, list) and all(isinstance(k, str) and "\x00" not in k for k in key)


async def test_a_cursor_the_list_did_not_make_is_a_422_naming_the_cursor(
    service: Service,
) -> None:
    refused = 0
    for path in paged(service):
        for cursor in CURSORS:
            answer = await get(service, path, query("cursor", cursor))
            what = (path, cursor, answer.status, answer.body[:300])
            if answer.status == 200:
                # text in the shape of a list sorted by text: a page after it, maybe empty
                assert text_key(cursor) and path not in SORTED_BY_TIME, what
                continue
            assert answer.status == 422 and answer.content_type == PROBLEM, what
            problem = json.loads(answer.body)
            assert [p["name"] for p in problem["invalid_params"]] == ["query.cursor"], what
            assert "cursor" in problem["detail"], what
            refused += 1
    assert refused >= len(CURSORS) * len(paged(service)) * 2 // 3


async def test_a_cursor_the_service_made_gives_the_next_page(service: Service) -> None:
    for path in paged(service):
        first = await get(service, path, b"limit=1")
        assert first.status == 200, (path, first.body[:300])
        cursor = json.loads(first.body)["next_cursor"]
        if cursor is not None:
            after = await get(service, path, query("cursor", cursor) + b"&limit=1")
            assert after.status == 200, (path, after.body[:300])


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.datetimes().map(lambda d: d.isoformat()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


async def test_cursors_of_any_json_or_any_text_never_give_a_5xx(service: Service) -> None:
    paths = paged(service)
    cursors: list[str] = []

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.one_of(JSON.map(b64), st.text(max_size=60)))
    def collect(cursor: str) -> None:
        cursors.append(cursor)

    collect()
    failures = [
        wrong(await get(service, path, query("cursor", cursor)), f"{path}?cursor={cursor!r:.60}")
        for path in paths
        for cursor in cursors
    ]
    bad = [f for f in failures if f]
    assert not bad, "\n".join(bad)
