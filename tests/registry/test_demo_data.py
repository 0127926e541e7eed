"""The registry demo data: every partnership the four articles name, in the state they give it,
loaded over HTTP into a registry on real PostgreSQL, and loaded again without changing a thing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.registry import demo
from services.registry.app import create_app
from shared import db as dbmod
from shared.auth import Role
from shared.ratelimit import RateLimiter
from shared.testing import fresh_database, issue_key
from tests.clock import ManualClock
from tests.conftest import settings_for

# the articles the demo data comes from, kept in the repository with their sources named
SOURCES = Path(__file__).resolve().parents[2] / "docs" / "sources"
LATEST = datetime(2026, 11, 24, tzinfo=UTC)
BURST = 30  # of the loader's key in the rate-limit test
# one event per organisation registered, one per step of each partnership's history
# a registration, and its contacts when it has some; each partnership's history
DEMO_EVENTS = (
    len(demo.ORGANISATIONS)
    + sum(1 for o in demo.ORGANISATIONS if o.contacts)
    + sum(len(p.history) for p in demo.PARTNERSHIPS)
)


@dataclass
class Registry:
    client: httpx.AsyncClient  # the loader's: one registry_admin key, as `make run` gives it
    url: str
    # the test's own requests, with a key of their own: the per-key rate limit the loader
    # spends (and waits out) is not theirs to wait for
    checker: httpx.AsyncClient
    limiter: RateLimiter

    async def count_events(self) -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()

    async def partnership(self, partnership_id: str) -> dict[str, Any]:
        response = await self.checker.get(f"/v1/partnerships/{partnership_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def registry_at(url: str, **settings: Any) -> AsyncIterator[Registry]:
    app = create_app(settings_for(url, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

        def client(token: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=transport,
                base_url="http://t",
                headers={"Authorization": f"Bearer {token}"},
            )

        loader = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        checker = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        async with client(loader) as loading, client(checker) as checking:
            yield Registry(loading, url, checking, app.state.ctx.rate_limiter)


@pytest.fixture
async def registry(pg_server: str) -> AsyncIterator[Registry]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        async with registry_at(url) as reg:
            yield reg


async def test_the_loader_waits_out_its_key_s_rate_limit_and_loads_everything(
    pg_server: str,
) -> None:
    """`make run` loads the demo with one key: over the key's rate limit the registry answers
    429 with Retry-After (and does nothing), and the loader waits and sends again.

    The limiter runs on a clock that stands still until a 429 is answered, then moves on by
    the Retry-After the loader waits out: every BURST-th request is over the limit, however
    fast or slow the machine."""
    async with (
        fresh_database(pg_server, dbmod.schema_text("services.registry")) as url,
        registry_at(url, rate_limit_per_second=100, rate_limit_burst=BURST) as reg,
    ):
        clock = ManualClock()
        reg.limiter.clock = clock
        limited = answered = 0

        async def count(response: httpx.Response) -> None:
            nonlocal limited, answered
            if response.status_code == 429:
                limited += 1
                assert response.headers["content-type"] == "application/problem+json"
                clock.advance(float(response.headers["Retry-After"]))
            else:
                answered += 1

        reg.client.event_hooks["response"].append(count)
        summary = await demo.load(reg.client)
        assert answered > BURST, "the limit was never reached: this test proves nothing"
        # BURST answered, one refused and waited out, BURST answered again, ...
        assert limited == (answered - 1) // BURST
        assert summary.organisations_registered == len(demo.ORGANISATIONS)
        assert summary.partnerships_proposed == len(demo.PARTNERSHIPS)
        assert await reg.count_events() == DEMO_EVENTS


def test_every_partnership_joins_demo_organisations_and_starts_proposed_in_the_past() -> None:
    organisations = {o.organisation_id for o in demo.ORGANISATIONS}
    ids = [p.partnership_id for p in demo.PARTNERSHIPS]
    assert len(ids) == len(set(ids))
    for p in demo.PARTNERSHIPS:
        assert set(p.organisations) <= organisations, p.partnership_id
        assert p.history[0].to == "proposed", p.partnership_id
        dates = [step.occurred_at for step in p.history]
        assert dates == sorted(dates) and dates[-1] <= LATEST, p.partnership_id


def test_every_evidence_note_quotes_the_article_it_names_word_for_word() -> None:
    for p in demo.PARTNERSHIPS:
        text = " ".join((SOURCES / p.source).read_text().split())
        for step in p.history:
            for quote in step.quotes:
                assert quote in text, (p.partnership_id, step.to, quote)


async def test_loads_every_partnership_in_its_articles_state_and_a_second_run_changes_nothing(
    registry: Registry,
) -> None:
    first = await demo.load(registry.client)
    assert first == demo.Summary(
        organisations_registered=len(demo.ORGANISATIONS),
        organisations_present=0,
        partnerships_proposed=len(demo.PARTNERSHIPS),
        partnerships_present=0,
        status_changes=sum(len(p.history) - 1 for p in demo.PARTNERSHIPS),
        left_alone=(),
    )

    loaded = {
        p.partnership_id: await registry.partnership(p.partnership_id) for p in demo.PARTNERSHIPS
    }
    assert loaded["leeds-kharkiv-twinning"]["status"] == "under_discussion"
    assert loaded["irpin-miami-twinning"]["status"] == "agreed"
    assert loaded["irpin-miami-twinning"]["signed_at"] is None
    bucha_bergamo = loaded["bucha-bergamo-twinning"]
    assert (bucha_bergamo["status"], bucha_bergamo["kind"]) == ("signed", "twinning")
    assert bucha_bergamo["signed_at"].startswith("2022-06-01")
    lille_kharkiv = loaded["lille-kharkiv-twinning"]
    assert lille_kharkiv["status"] == "signed"
    assert lille_kharkiv["signed_at"].startswith("1978-01-01")
    assert sorted(lille_kharkiv["organisations"]) == ["kharkiv", "lille"]
    fastiv = loaded["fastiv-druskininkai-bridges-of-trust"]
    assert (fastiv["programme"], fastiv["kind"]) == ("Bridges of Trust", "programme_partnership")
    assert fastiv["phase"]
    assert loaded["poprad-uzhhorod-cooperation"]["status"] == "proposed"
    programme = await registry.checker.get(
        "/v1/partnerships", params={"programme": "bridges of trust"}
    )
    assert [p["partnership_id"] for p in programme.json()["items"]] == [
        "fastiv-druskininkai-bridges-of-trust"
    ]

    for p in demo.PARTNERSHIPS:
        got = loaded[p.partnership_id]
        assert got["status"] == p.status, p.partnership_id
        assert [h["status"] for h in got["history"]] == [s.to for s in p.history]
        for entry in got["history"]:
            evidence = entry["evidence"]
            assert evidence and evidence["reference"] == p.source, (p.partnership_id, entry)
            assert evidence["note"], (p.partnership_id, entry)

    events = await registry.count_events()
    assert events == DEMO_EVENTS
    again = await demo.load(registry.client)
    assert again == demo.Summary(
        organisations_registered=0,
        organisations_present=len(demo.ORGANISATIONS),
        partnerships_proposed=0,
        partnerships_present=len(demo.PARTNERSHIPS),
        status_changes=0,
        left_alone=(),
    )
    assert await registry.count_events() == events


async def test_a_rerun_finishes_what_an_earlier_run_began_and_leaves_later_changes_alone(
    registry: Registry,
) -> None:
    """An interrupted run left Leeds-Kharkiv only proposed; someone has since suspended
    Bucha-Bergamo. The loader completes the one and does not undo the other."""
    await demo.load_organisations(registry.client)
    leeds = next(p for p in demo.PARTNERSHIPS if p.partnership_id == "leeds-kharkiv-twinning")
    proposed = await registry.checker.post("/v1/partnerships", json=leeds.proposal())
    assert proposed.status_code == 201, proposed.text
    await demo.load(registry.client)
    suspended = await registry.checker.post(
        "/v1/partnerships/bucha-bergamo-twinning/transitions",
        json={"to": "suspended", "evidence": {"reference": "test"}},
    )
    assert suspended.status_code == 200, suspended.text
    events = await registry.count_events()

    again = await demo.load(registry.client)

    assert again.left_alone == ("bucha-bergamo-twinning",)
    assert again.status_changes == 0
    assert (await registry.partnership("bucha-bergamo-twinning"))["status"] == "suspended"
    assert (await registry.partnership("leeds-kharkiv-twinning"))["status"] == "under_discussion"
    assert await registry.count_events() == events
