"""The shipments demo data: the convoys the articles tell of, loaded over HTTP onto the pledge
lines the pledges demo commits, and loaded again without changing a thing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.pledges.demo import data as pledges_demo
from services.shipments import demo
from services.shipments.demo.data import CONVOYS
from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi

# As the pledges demo commits them (services/pledges/demo/data.py), plus the in-kind line
# for the Leeds vans that demo does not make.
LINES: list[dict[str, Any]] = [
    {
        "pledge_id": "lille-kharkiv-medicines-2022-06",
        "line_id": "medicines",
        "item": "Medicines",
        "category": "medicines",
        "unit": "tonnes",
        "quantity": "13",
        "weight_kg": "13000",
    },
    {
        "pledge_id": "lille-kharkiv-generators-2023",
        "line_id": "generators",
        "item": "Medium-sized generator",
        "category": "generators",
        "unit": "pieces",
        "quantity": "50",
        "weight_kg": None,
    },
    {
        "pledge_id": "chu-lille-kharkiv-medicines-2023-03",
        "line_id": "medicines",
        "donor_id": "chu-lille",
        "item": "Medicines",
        "category": "medicines",
        "unit": "tonnes",
        "quantity": "6.5",
        "weight_kg": "6500",
    },
]
LEEDS_LINE = {
    "pledge_id": "leeds-ukraine-aid-appeal-vans",
    "line_id": "vans",
    "donor_id": "leeds-charity-lunch",
    "item": "Donated goods (two vans)",
    "category": "food",
    "unit": "boxes",
    "quantity": "300",
    "weight_kg": "2400",
    "occurred_at": datetime(2022, 3, 1, tzinfo=UTC),  # committed as the pledges demo does
}


@pytest.fixture
async def operator(api: ShipmentsApi) -> httpx.AsyncClient:
    """The demo's client: a registry administrator's key, as `make run` passes it."""
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    return api.client


def test_the_demo_draws_on_lines_the_pledges_demo_commits() -> None:
    committed = {
        (p.body["pledge_id"], line["line_id"])
        for p in pledges_demo.PLEDGES
        if p.commit_at is not None
        for line in p.body["lines"]
        if line["kind"] == "in_kind"
    }
    wanted = {
        (load.want.pledge_id, load.want.line_id)
        for convoy in CONVOYS
        for load in convoy.loads
        if load.want.pledge_id is not None
    }
    assert wanted <= committed
    assert {(x["pledge_id"], x["line_id"]) for x in [*LINES, LEEDS_LINE]} == committed


def test_every_road_entry_lies_in_the_past_in_order_and_has_a_unique_id() -> None:
    ids = [e["entry_id"] for c in CONVOYS for e in c.entries]
    assert len(ids) == len(set(ids))
    for convoy in CONVOYS:
        times = [e["occurred_at"] for e in convoy.entries]
        assert convoy.entries == () or convoy.entries[0]["kind"] == "dispatch"
        assert all(t < "2024" for t in times), convoy.convoy_id


async def statuses(client: httpx.AsyncClient) -> dict[str, str]:
    listed = await client.get("/v1/convoys")
    return {c["convoy_id"]: c["status"] for c in listed.json()["items"]}


async def test_loads_the_convoys_and_a_second_run_changes_nothing(
    api: ShipmentsApi, operator: httpx.AsyncClient
) -> None:
    for line in LINES:
        await api.pledge_line(**line)

    first = await demo.load(operator, wait=5, settled_after=0.5)

    assert first.convoys_planned == 3 and first.deliveries_confirmed == 1
    assert first.convoys_closed == 1 and first.entries_recorded == 19
    [skipped] = first.skipped
    assert skipped.startswith("leeds-kharkiv-vans-2022-03: not known to shipments")
    assert await statuses(operator) == {
        "lille-kharkiv-generators-2023-03": "in_transit",
        "lille-kharkiv-medicines-2023-03": "loading",
        "lille-kharkiv-medicines-2022-06": "closed",
    }
    medicines = (await operator.get("/v1/convoys/lille-kharkiv-medicines-2022-06")).json()
    assert medicines["weight_kg"] == "13000"
    assert medicines["delivery"]["outcome"] == "partial"
    assert medicines["discrepancies"] == [
        {
            "manifest_line_id": "medicines-truck-1",
            "pledge_id": "lille-kharkiv-medicines-2022-06",
            "line_id": "medicines",
            "donor_id": "lille",
            "item": "Medicines",
            "unit": "tonnes",
            "loaded": "7",
            "received": "6.988",
            "damaged": "0.012",
            "short": "0",
            "lost": "0",
        }
    ]
    generators = (await operator.get("/v1/convoys/lille-kharkiv-generators-2023-03")).json()
    assert generators["manifest"][0]["quantity"] == "50"
    assert generators["weight_kg"] == "4750"
    assert generators["position"]["place"] == "Poltava"
    board = (await operator.get("/v1/tracking/in-transit")).json()["items"]
    assert [c["convoy_id"] for c in board] == ["lille-kharkiv-generators-2023-03"]
    [delivered] = await api.events("shipments.delivery-confirmed")
    assert sum(Decimal(x["received"]) for x in delivered["lines"]) == Decimal("12.988")

    events = await api.count()
    again = await demo.load(operator, wait=5, settled_after=0.5)
    assert again == demo.Summary(convoys_present=3, entries_present=19, skipped=first.skipped)
    assert await api.count() == events
    assert demo.report(again)[0] == (
        "shipments: 0 convoys planned, 3 already present, 0 manifest lines loaded"
    )


async def test_the_leeds_vans_leave_once_a_leeds_in_kind_line_is_committed(
    api: ShipmentsApi, operator: httpx.AsyncClient
) -> None:
    await api.pledge_line(**LEEDS_LINE)
    summary = await demo.load(operator, wait=0, settled_after=0)
    assert summary.convoys_planned == 1 and summary.convoys_closed == 1
    vans = (await operator.get("/v1/convoys/leeds-kharkiv-vans-2022-03")).json()
    assert vans["status"] == "closed"
    assert [(m["vehicle"], m["quantity"]) for m in vans["manifest"]] == [
        ("YK71 LRB", "150"),
        ("YK19 UAA", "150"),
    ]
    assert vans["delivery"]["outcome"] == "full"
    timeline = (await operator.get("/v1/convoys/leeds-kharkiv-vans-2022-03/timeline")).json()
    road = [e for e in timeline["entries"] if e["entry_id"]]
    assert road[0]["occurred_at"].startswith("2022-03-19")
    assert road[-1]["occurred_at"].startswith("2022-03-25")  # a week on the road


async def test_without_any_pledge_line_it_loads_nothing_and_says_why(
    operator: httpx.AsyncClient,
) -> None:
    summary = await demo.load(operator, wait=0.2)
    assert summary.convoys_planned == summary.convoys_present == 0
    assert len(summary.skipped) == len(CONVOYS)
    assert "never reached shipments" in demo.report(summary)[0]
