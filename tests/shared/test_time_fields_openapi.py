"""Every date and date-time the three APIs accept, found by walking their OpenAPI documents
(query parameters and request bodies, nested objects, lists and tagged unions included), is
in its documented range: year 1, year 9999, infinity-like words, numbers and values just
outside the range are a 422 problem naming the field, and store nothing; values just inside
are not refused for that field. The bounds are those of shared/instants.py, documented in each
schema as x-earliest and x-latest.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared import instants
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for

SERVICES = ["registry", "pledges", "shipments"]
SKIP = {("get", "/v1/tracking/updates")}  # a never-ending stream, with no time parameter
# a caller every operation admits (a service key reports key uses), so each time field is
# checked by validation, not refused before it
ROLES = [Role.MEMBER, Role.LOGISTICS, Role.REGISTRY_ADMIN, Role.AUDITOR, Role.SERVICE]
PROBLEM = "application/problem+json"

# Step of the way from a request body to a field: a property, a list item, or the variant of
# a tagged union (its tag's property and value).
Step = tuple[str, Any]


@dataclass(frozen=True)
class TimeField:
    method: str
    path: str
    where: str  # "query" or "body"
    steps: tuple[Step, ...]
    format: str  # "date" or "date-time"
    latest: str  # the documented upper bound

    @property
    def name(self) -> str:
        """How the 422 problem names it (shared/problems.py)."""
        if self.where == "query":
            return f"query.{self.steps[0][1]}"
        parts = []
        for kind, value in self.steps:
            parts.append(value if kind == "prop" else "0" if kind == "item" else value[1])
        return ".".join(parts)

    def request(self, value: Any) -> dict[str, Any]:
        url = self.path
        while "{" in url:
            start = url.index("{")
            url = url[:start] + "x" + url[url.index("}") + 1 :]
        if self.where == "query":
            return {"method": self.method, "url": url, "params": {self.steps[0][1]: value}}
        return {"method": self.method, "url": url, "json": _body(self.steps, value)}

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path} {self.name}"


def _body(steps: tuple[Step, ...], value: Any) -> Any:
    if not steps:
        return value
    (kind, arg), rest = steps[0], steps[1:]
    if kind == "item":
        return [_body(rest, value)]
    if kind == "variant":
        inner = _body(rest, value)
        return {**inner, arg[0]: arg[1]}
    return {arg: _body(rest, value)}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _walk(
    document: dict[str, Any], schema: dict[str, Any], steps: tuple[Step, ...], seen: frozenset[str]
) -> Iterator[tuple[tuple[Step, ...], dict[str, Any]]]:
    """Every (steps, schema) of a date or date-time inside `schema`."""
    if "$ref" in schema:
        name = schema["$ref"]
        if name in seen:
            return
        seen = seen | {name}
    schema = _resolve(document, schema)
    if schema.get("format") in ("date", "date-time"):
        yield steps, schema
        return
    tag = schema.get("discriminator", {}).get("propertyName")
    for option in schema.get("oneOf", []) + schema.get("anyOf", []):
        if tag is None:
            yield from _walk(document, option, steps, seen)
            continue
        tag_value = _resolve(document, option)["properties"][tag]["const"]
        yield from _walk(document, option, (*steps, ("variant", (tag, tag_value))), seen)
    if "items" in schema:
        yield from _walk(document, schema["items"], (*steps, ("item", None)), seen)
    for prop, sub in schema.get("properties", {}).items():
        yield from _walk(document, sub, (*steps, ("prop", prop)), seen)


def time_fields(document: dict[str, Any]) -> list[TimeField]:
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if (method, path) in SKIP:
                continue
            for parameter in operation.get("parameters", []):
                for _, schema in _walk(document, parameter["schema"], (), frozenset()):
                    steps = (("prop", parameter["name"]),)
                    found.append(_field(method, path, parameter["in"], steps, schema))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                for steps, schema in _walk(document, body["schema"], (), frozenset()):
                    found.append(_field(method, path, "body", steps, schema))
    return found


def _field(
    method: str, path: str, where: str, steps: tuple[Step, ...], schema: dict[str, Any]
) -> TimeField:
    # the range is documented on every one of them
    earliest = "1900-01-01T00:00:00Z" if schema["format"] == "date-time" else "1900-01-01"
    assert schema.get("x-earliest") == earliest, (method, path, steps, schema)
    assert "x-latest" in schema, (method, path, steps, schema)
    return TimeField(method, path, where, steps, schema["format"], schema["x-latest"])


def _latest(field: TimeField, now: datetime) -> datetime:
    if field.latest.startswith("now + clock skew"):
        return now + instants.clock_skew()
    if field.latest.startswith("today (UTC) + 1 day"):
        return now + timedelta(days=1)
    assert field.latest.endswith("+ 10 years"), field.latest
    return now + instants.PLAN_HORIZON


def outside(field: TimeField) -> dict[str, Any]:
    now = datetime.now(UTC)
    latest = _latest(field, now)
    if field.format == "date":
        return {
            "year-1": "0001-01-01",
            "year-9999": "9999-12-31",
            "day-before-1900": "1899-12-31",
            "day-after-the-latest": (latest + timedelta(days=1)).date().isoformat(),
            "-infinity": "-infinity",
            "infinity": "infinity",
            "epoch-number": 0,
            "epoch-number-as-text": "0",
        }
    return {
        "year-1": "0001-01-01T00:00:00Z",
        "year-1-ahead-of-utc": "0001-01-01T00:00:00+01:00",
        "year-9999": "9999-12-31T23:59:59Z",
        "year-9999-behind-utc": "9999-12-31T23:59:59-05:00",
        "just-before-1900": "1899-12-31T23:59:59.999999Z",
        "1900-in-paris-is-1899-in-utc": "1900-01-01T00:30:00+01:00",
        "a-minute-past-the-latest": (latest + timedelta(minutes=1)).isoformat(),
        "-infinity": "-infinity",
        "infinity": "infinity",
        "unix-milliseconds": 253402300799000,
        "unix-seconds-as-text": "1646119800",
        "naive": "2022-03-01T09:30:00",
    }


def inside(field: TimeField) -> dict[str, str]:
    now = datetime.now(UTC)
    latest = _latest(field, now)
    if field.format == "date":
        return {
            "1900-01-01": "1900-01-01",
            "the-latest-day": latest.date().isoformat(),
            "2022-03-01": "2022-03-01",
        }
    return {
        "1900-01-01": "1900-01-01T00:00:00Z",
        "1900-in-kyiv-after-midnight-utc": "1900-01-01T03:00:00+03:00",
        "a-second-before-the-latest": (latest - timedelta(seconds=1)).isoformat(),
        "2022-03-01": "2022-03-01T09:30:00+02:00",
    }


@dataclass
class Api:
    service: str
    client: httpx.AsyncClient
    url: str
    fields: list[TimeField]

    async def stored(self) -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()


@pytest.fixture(params=SERVICES)
async def api(request: pytest.FixtureRequest, pg_server: str) -> AsyncIterator[Api]:
    create_app = importlib.import_module(f"services.{request.param}.app").create_app
    async with fresh_database(pg_server) as url:
        app = create_app(settings_for(url, rate_limit_per_second=0))
        async with app.router.lifespan_context(app):
            token = await issue_key(url, organisation="lille", roles=ROLES)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t", headers=headers
            ) as client:
                yield Api(request.param, client, url, time_fields(app.openapi()))


# every time field each API has, at least: a walk that found fewer missed some
EXPECTED = {
    "registry": {
        "POST /v1/partnerships occurred_at",
        "GET /v1/organisations/{organisation_id} query.as_of",
        "GET /v1/events query.recorded_from",
        "GET /v1/events query.recorded_to",
        "POST /v1/audit/verify checkpoints.0.signed_at",
    },
    "pledges": {
        "POST /v1/needs deadline",
        "POST /v1/needs occurred_at",
        "POST /v1/pledges occurred_at",
        "GET /v1/reports/needs query.from",
        "GET /v1/reports/needs query.to",
        "GET /v1/events query.recorded_from",
    },
    "shipments": {
        "POST /v1/convoys planned_departure",
        "POST /v1/convoys occurred_at",
        "POST /v1/convoys/{convoy_id}/entries entries.0.checkpoint.occurred_at",
        "POST /v1/convoys/{convoy_id}/entries entries.0.incident.occurred_at",
        "GET /v1/convoys query.departs_from",
        "GET /v1/convoys/{convoy_id} query.as_of",
    },
}


async def test_every_time_field_of_every_operation_is_refused_outside_its_range(
    api: Api,
) -> None:
    names = {str(f) for f in api.fields}
    assert EXPECTED[api.service] <= names, EXPECTED[api.service] - names
    before = await api.stored()
    tried = 0
    for field in api.fields:
        for label, value in outside(field).items():
            answer = await api.client.request(**field.request(value))
            assert answer.status_code == 422, (str(field), label, answer.text[:300])
            assert answer.headers["content-type"] == PROBLEM
            named = [p["name"] for p in answer.json()["invalid_params"]]
            assert field.name in named, (str(field), label, named)
            assert await api.stored() == before, (str(field), label)
            tried += 1
        for label, value in inside(field).items():
            answer = await api.client.request(**field.request(value))
            assert answer.status_code < 500, (str(field), label, answer.text[:300])
            if answer.status_code == 422 and "invalid_params" in answer.json():
                named = [p["name"] for p in answer.json()["invalid_params"]]
                assert field.name not in named, (str(field), label, answer.text[:300])
    assert tried >= 5 * len(api.fields)


@pytest.mark.parametrize("api", ["pledges"], indirect=True)
async def test_the_dates_inside_a_report_s_rates_are_in_range_too(api: Api) -> None:
    """`rate=CUR:RATE:YYYY-MM-DD` holds a date inside a text: checked with the same range."""
    for day in ["0001-01-01", "1899-12-31", "9999-12-31"]:
        params = {"convert_to": "EUR", "rate": f"GBP:1.165:{day}"}
        answer = await api.client.get("/v1/reports/needs", params=params)
        assert answer.status_code == 422, (day, answer.text[:300])
        assert [p["name"] for p in answer.json()["invalid_params"]] == ["query.rate"]
    params = {"convert_to": "EUR", "rate": "GBP:1.165:1900-01-01"}
    assert (await api.client.get("/v1/reports/needs", params=params)).status_code == 200
