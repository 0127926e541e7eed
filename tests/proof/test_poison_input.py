"""Poison input against the running system: every service's API and worker as processes, on
real PostgreSQL and a real broker (bench.loadgen_stack.ProofStack).

The issue's attack, `POST /v1/pledges` with `"occurred_at": "0001-01-01T00:00:00+00:00"`, once
stored PostgreSQL's -infinity, stopped the pledges worker's sealer, and with it the stack, for
good. It and its friends (year 9999, offsets that cross into year 0 or 10000 in UTC, infinity,
a Unix time, instants in queries, dates in bodies, on each service) are now a 422 problem
naming the field and store nothing; the same bodies with a sane instant are then accepted, and
the workers go on sealing, publishing and consuming: every event reaches every consumer, every
worker is ready with its sealer unblocked, every chain verifies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bench.common import connection
from bench.loadgen import World
from bench.loadgen_stack import Keys, Postgres, ProofStack, converge
from shared.settings import SERVICES
from tests.proof.test_hostile_input import PROBLEM, _record

ATTACK = "0001-01-01T00:00:00+00:00"


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@dataclass
class Poison:
    """One write or read, sane but for one time field; `bad` are the values tried there."""

    label: str
    service: str
    method: str
    path: str
    key: str
    body: dict[str, Any] | None
    field: str  # a body property, or query.<name>
    bad: list[Any]
    good: Any  # the same request with this value instead is accepted
    accepted: int

    def request(self, value: Any) -> dict[str, Any]:
        if self.field.startswith("query."):
            return {"params": {self.field.removeprefix("query."): value}, "json": self.body}
        return {"json": {**(self.body or {}), self.field: value}}


@dataclass
class Running:
    stack: ProofStack
    keys: Keys
    world: World
    http: httpx.AsyncClient

    async def send(
        self, service: str, method: str, path: str, key: str, **kwargs: Any
    ) -> httpx.Response:
        url = self.stack.api_url(service) + path
        headers = {"Authorization": f"Bearer {key}"}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def events(self) -> dict[str, int]:
        counts = {}
        for service, url in self.stack.dbs.items():
            async with connection(url) as conn:
                counts[service] = int(await conn.fetchval("SELECT count(*) FROM events"))
        return counts


@pytest.fixture
async def running(pg_server: str) -> AsyncIterator[Running]:
    stack = ProofStack(pg=Postgres(pg_server), name="poison")
    world = World.make(stack.run.split("_")[1], cities=2, donors=2)
    try:
        keys = await stack.prepare(world.organisations())
        await asyncio.to_thread(stack.start)
        await stack.wait_leaders()
        async with httpx.AsyncClient(timeout=30) as http:
            run = Running(stack, keys, world, http)
            await register(run)
            await converge(stack)
            yield run
    except Exception:
        print(stack.tail_logs())
        raise
    finally:
        stack.stop()
        await stack.drop()


async def register(run: Running) -> None:
    for org, ukrainian in run.world.organisations():
        body: dict[str, Any] = {
            "organisation_id": org,
            "name": f"{'Hromada' if ukrainian else 'City'} {org}",
            "kind": "municipality",
            "country": "UA" if ukrainian else "FR",
        }
        answer = await run.send("registry", "POST", "/v1/organisations", run.keys.admin, json=body)
        assert answer.status_code == 201, answer.text
    partnership, city = run.world.partnership(0)
    body = {
        "partnership_id": partnership,
        "organisations": [run.world.donors[0], city],
        "kind": "twinning",
        "occurred_at": "1978-06-01T00:00:00+00:00",
    }
    answer = await run.send("registry", "POST", "/v1/partnerships", run.keys.admin, json=body)
    assert answer.status_code == 201, answer.text


def poisons(run: Running) -> list[Poison]:
    donor, other_donor = run.world.donors
    partnership, city = run.world.partnership(0)
    other_city = run.world.cities[1]
    member, logistics, auditor = run.keys.member, run.keys.logistics, run.keys.auditor
    pledge = {
        "pledge_id": "pl-poison",
        "donor_id": donor,
        "recipient_id": city,
        "partnership_id": partnership,
        "lines": [
            {
                "line_id": "generators",
                "kind": "in_kind",
                "item": "Diesel generators, 30 kVA",
                "category": "generators",
                "quantity": "50",
                "unit": "pieces",
                "weight_kg": "25000",
            }
        ],
    }
    need = {
        "need_id": "need-poison",
        "kind": "item",
        "category": "medicines",
        "description": "Antibiotics in short supply",
        "quantity": "400",
        "unit": "boxes",
    }
    convoy = {
        "convoy_id": "convoy-poison",
        "reference": "Medicines convoy",
        "origin_id": donor,
        "destination_id": city,
        "carrier_id": donor,
        "vehicles": [{"registration": "GH-482-LK", "type": "truck", "capacity_kg": "12000"}],
    }
    proposal = {
        "partnership_id": "tw-poison",
        "organisations": [other_donor, other_city],
        "kind": "sister_city",
    }
    far = ["9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59-05:00", "infinity"]
    early = [ATTACK, "0001-01-01T00:00:00+01:00", "1899-12-31T23:59:59Z", "-infinity", 0]
    return [
        # the attack, and the other ends of the same field
        Poison(
            "pledge-occurred-at",
            "pledges",
            "POST",
            "/v1/pledges",
            member[donor],
            pledge,
            "occurred_at",
            [*early, *far, "1646119800"],
            _in(-1),
            201,
        ),
        Poison(
            "need-deadline",
            "pledges",
            "POST",
            "/v1/needs",
            member[city],
            need,
            "deadline",
            ["0001-01-01", "9999-12-31", "infinity", 20220301],
            _in(30)[:10],
            201,
        ),
        Poison(
            "need-occurred-at",
            "pledges",
            "POST",
            "/v1/needs",
            member[city],
            {**need, "need_id": "need-poison-2"},
            "occurred_at",
            early,
            _in(-2),
            201,
        ),
        Poison(
            "pledge-as-of",
            "pledges",
            "GET",
            "/v1/pledges/pl-poison",
            member[donor],
            None,
            "query.as_of",
            [ATTACK, "9999-12-31T23:59:59Z", "-infinity"],
            _in(0),
            200,
        ),
        Poison(
            "partnership-occurred-at",
            "registry",
            "POST",
            "/v1/partnerships",
            run.keys.admin,
            proposal,
            "occurred_at",
            [*early, *far],
            "2022-04-01T00:00:00+03:00",
            201,
        ),
        Poison(
            "registry-feed-recorded-from",
            "registry",
            "GET",
            "/v1/events",
            auditor,
            None,
            "query.recorded_from",
            [ATTACK, "infinity", "253402300799"],
            "2022-01-01T00:00:00Z",
            200,
        ),
        Poison(
            "convoy-planned-departure",
            "shipments",
            "POST",
            "/v1/convoys",
            logistics[donor],
            convoy,
            "planned_departure",
            [ATTACK, "9999-12-31T00:00:00Z", _in(3660), "-infinity"],
            _in(2),
            201,
        ),
        Poison(
            "convoys-departs-from",
            "shipments",
            "GET",
            "/v1/convoys",
            logistics[donor],
            None,
            "query.departs_from",
            [ATTACK, "9999-12-31T23:59:59-05:00"],
            "2022-01-01T00:00:00Z",
            200,
        ),
    ]


@pytest.mark.once
async def test_poison_instants_are_refused_and_the_system_keeps_sealing_and_publishing(
    running: Running,
) -> None:
    cases = poisons(running)
    before = await running.events()
    refused: dict[str, list[int]] = {}
    for case in cases:
        for value in case.bad:
            answer = await running.send(
                case.service, case.method, case.path, case.key, **case.request(value)
            )
            assert answer.status_code == 422, (case.label, value, answer.text[:300])
            assert answer.headers["content-type"] == PROBLEM
            named = [p["name"] for p in answer.json()["invalid_params"]]
            assert named == [case.field], (case.label, value, named)
            refused.setdefault(case.label, []).append(answer.status_code)
    assert await running.events() == before, "a refused request stored something"

    # the same requests with a sane instant are accepted: only the instant was wrong
    for case in cases:
        answer = await running.send(
            case.service, case.method, case.path, case.key, **case.request(case.good)
        )
        assert answer.status_code == case.accepted, (case.label, answer.text[:300])
    commit = await running.send(
        "pledges",
        "POST",
        "/v1/pledges/pl-poison/commit",
        running.keys.member[running.world.donors[0]],
        json={},
    )
    assert commit.status_code == 200, commit.text
    after = await running.events()
    assert all(after[s] > before[s] for s in SERVICES), (before, after)

    # every worker goes on: sealed, relayed and consumed everywhere, nothing blocked
    await converge(running.stack)
    for service in SERVICES:
        (worker,) = running.stack.workers[service]
        assert worker.popen is not None and worker.popen.poll() is None, f"{service} worker died"
        ready = await running.http.get(f"http://127.0.0.1:{worker.port}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["sealer"] == {"blocked": False}
        verdict = await running.send(
            service, "GET", "/v1/audit/verify", running.keys.auditor, params={"deep": "true"}
        )
        assert verdict.json()["intact"], verdict.json()
        assert verdict.json()["head_position"] >= after[service]
    _record("poison-instants-refused", {label: len(codes) for label, codes in refused.items()})
    _record("poison-instants-events-after", {s: after[s] - before[s] for s in SERVICES})
