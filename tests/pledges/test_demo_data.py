"""The pledges demo data: loaded over HTTP while the registry's data is still arriving, in the
state the articles give, quoting them verbatim, and loaded again without changing a thing."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.pledges import demo
from services.pledges.app import create_app
from services.pledges.demo import data as demo_data
from shared import db as dbmod
from shared import directory
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.pledges.conftest import PledgesApi, seed_registry

SOURCES = Path(__file__).resolve().parents[2] / "docs" / "sources"  # the articles


@pytest.fixture
async def empty(pg_server: str) -> AsyncIterator[PledgesApi]:
    """A pledges service whose copy of the registry is still empty."""
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")
    ) as url:
        app = create_app(settings_for(url))
        async with app.router.lifespan_context(app):
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://t",
                headers={"Authorization": f"Bearer {admin}"},
            ) as client:
                yield PledgesApi(client, app, url)


async def test_the_demo_waits_for_the_registry_then_loads_what_the_articles_tell(
    empty: PledgesApi,
) -> None:
    loading = asyncio.create_task(demo.load(empty.client))
    await asyncio.sleep(1.5)
    assert not loading.done(), "it waits for organisations the registry has not announced"
    await seed_registry(empty.url)
    summary = await asyncio.wait_for(loading, 30)
    assert summary == demo.Summary(4, 0, 5, 0, 8)

    generators = await empty.get("/v1/pledges/lille-kharkiv-generators-2023")
    assert generators["status"] == "committed"
    assert generators["lines"][0]["amendments"] == [
        {
            "previous": "100",
            "new": "50",
            "reason": "\u201cWe have about fifty for the moment\u201d (Martine Aubry)",
        }
    ]
    convoy = await empty.get("/v1/needs/lille-second-convoy-funding")
    assert (convoy["status"], convoy["coverage"]["gap"], convoy["target"]["formatted"]) == (
        "open",
        10_000_000,
        "100000.00",
    )
    june = await empty.get("/v1/pledges/lille-kharkiv-medicines-2022-06")
    medicines = june["lines"][0]
    assert (medicines["quantity"], medicines["unit"], medicines["recipient_confirmed"]) == (
        "13",
        "tonnes",
        "0",
    )
    assert medicines["donor_reported"]["difference"] == "13", "sent, not yet confirmed"
    leeds = await empty.get("/v1/pledges/leeds-together-for-ukraine-appeal")
    assert (leeds["status"], leeds["lines"][0]["recipient_confirmed"]) == ("fulfilled", 14_000_000)
    chu = await empty.get("/v1/needs/kharkiv-medicines-2023")
    assert (chu["status"], chu["coverage"]["committed"], chu["coverage"]["gap"]) == (
        "partly_covered",
        "6.5",
        "6.5",
    )


async def test_loading_again_changes_nothing(api: PledgesApi) -> None:
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    before = await api.count_events()
    assert await demo.load(api.client) == demo.Summary(0, 4, 0, 5, 0)
    assert await api.count_events() == before


def test_every_quotation_in_the_demo_data_is_verbatim_from_the_articles() -> None:
    text = " ".join(" ".join(p.read_text().split()) for p in sorted(SOURCES.glob("*.txt")))
    data = json.dumps(
        [demo_data.NEEDS, [p._asdict() for p in demo_data.PLEDGES]], ensure_ascii=False
    )
    quotes = re.findall(r"\u201c([^\u201d]+)\u201d", data)
    assert len(quotes) >= 8
    for quote in quotes:
        assert " ".join(quote.split()) in text, quote
