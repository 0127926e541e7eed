"""The views of one pledge line or need say the same: what is still due of a line (money
outstanding, goods remaining: domain.due) in the pledge view, the list, the pledges report (JSON
and CSV) and the totals, whether the pledge is only pledged, committed or withdrawn; a closed or
cancelled need's gap (domain.summarise) in the need view, the needs list, the needs report,
the totals and the IATI description (docs/exports.md, "The same figures in every view")."""

from __future__ import annotations

import csv
import io
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.pledges import domain, subscriptions
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.metrics import Metrics
from tests.conftest import settings_for
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, generators_pledge, incoming, loading

FUND = {
    "need_id": "kharkiv-fund",
    "kind": "money",
    "category": "medicines",
    "description": "Funds for medicines for the city hospitals",
    "amount": 3_000_000,
    "currency": "EUR",
    "priority": "high",
    "serves": ["hospitals"],
}


def money_line(amount: int, *, need: str | None = "kharkiv-fund") -> dict[str, Any]:
    return {
        "line_id": "funds",
        "kind": "money",
        "need_id": need,
        "item": "Medicines fund",
        "category": "medicines",
        "amount": amount,
        "currency": "EUR",
    }


def pledge(pledge_id: str, *lines: dict[str, Any], commit: bool = False) -> dict[str, Any]:
    return {
        "pledge_id": pledge_id,
        "recipient_id": "kharkiv",
        "lines": list(lines),
        "commit": commit,
    }


async def receive(api: PledgesApi, pledge_id: str, amount: int) -> None:
    await api.ok(
        f"/v1/pledges/{pledge_id}/lines/funds/receipts",
        {
            "amount": amount,
            "currency": "EUR",
            "received_on": datetime.now(UTC).date().isoformat(),
            "reference": "SEPA 1",
        },
        by="kharkiv",
    )


@pytest.fixture
async def runner(api: PledgesApi) -> AsyncIterator[ConsumerRunner]:
    db = Database(api.url, max_size=2)
    await db.open()
    try:
        yield ConsumerRunner(
            service="pledges",
            settings=settings_for(api.url),
            db=db,
            metrics=Metrics("pledges-test"),
            handlers=subscriptions.HANDLERS,
        )
    finally:
        await db.close()


async def deliver(runner: ConsumerRunner, received: str) -> None:
    """Shipments confirms `received` generators of lille-generators arrived in good condition."""
    event = incoming(
        "shipments",
        "shipments.delivery-confirmed",
        {
            "convoy_id": "convoy-1",
            "recipient_id": "kharkiv",
            "origin_id": "lille",
            "carrier_id": "lille",
            "lines": [
                {
                    "manifest_line_id": "m1",
                    "pledge_id": "lille-generators",
                    "line_id": "generators",
                    "item": "Medium-sized generator",
                    "unit": "pieces",
                    "loaded": received,
                    "received": received,
                    "damaged": "0",
                    "short": "0",
                    "lost": "0",
                }
            ],
        },
        stream_id="convoy-convoy-1",
        event_id=uuid.uuid4(),
    )
    for e in loading(event):
        await runner.apply(e)
    assert await runner.apply(event)


async def csv_rows(api: PledgesApi, report: str, **params: str) -> list[dict[str, str]]:
    """The CSV report's rows by HXL hashtag (the second row)."""
    response = await api.client.get(
        f"/v1/reports/{report}",
        params={**params, "format": "csv"},
        headers=await api.as_("bucha"),
    )
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    tags = rows[1]
    return [dict(zip(tags, row, strict=True)) for row in rows[2:]]


async def due_everywhere(api: PledgesApi, pledge_id: str) -> dict[str, Any]:
    """What is still due of `pledge_id`'s only line in the pledge view, the list, the pledges
    report as JSON and as CSV (money in minor units: the CSV's major units times 100)."""
    view = (await api.get(f"/v1/pledges/{pledge_id}"))["lines"][0]
    [listed] = [p for p in (await api.get("/v1/pledges"))["items"] if p["pledge_id"] == pledge_id]
    summary = listed["lines"][0]
    [row] = [
        r for r in (await api.get("/v1/reports/pledges"))["rows"] if r["pledge_id"] == pledge_id
    ]
    [cells] = [r for r in await csv_rows(api, "pledges") if r["#meta+id+pledge"] == pledge_id]
    if view["kind"] == "money":
        return {
            "view": view["outstanding"],
            "list": summary["outstanding"],
            "report": row["outstanding"],
            "csv": int(Decimal(cells["#value+outstanding"]) * 100),
        }
    return {
        "view": view["remaining"],
        "list": summary["remaining"],
        "report": row["remaining"],
        "csv": cells["#indicator+num+remaining"],
    }


def same(value: Any) -> dict[str, Any]:
    return dict.fromkeys(("view", "list", "report", "csv"), value)


async def money_totals(api: PledgesApi, by: str, organisation: str) -> dict[str, Any]:
    [row] = [
        r
        for r in (await api.get("/v1/reports/totals", by=by))["rows"]
        if r["organisation_id"] == organisation and r["kind"] == "money"
    ]
    return row


async def test_a_withdrawn_money_line_has_nothing_outstanding_in_any_view(
    api: PledgesApi,
) -> None:
    """Lille commits EUR 30,000 to Kharkiv's need, EUR 10,000 is received, Lille withdraws."""
    await api.ok("/v1/needs", FUND, by="kharkiv")
    await api.ok(
        "/v1/pledges", pledge("lille-funds", money_line(3_000_000), commit=True), by="lille"
    )
    await receive(api, "lille-funds", 1_000_000)
    assert await due_everywhere(api, "lille-funds") == same(2_000_000)
    await api.ok("/v1/pledges/lille-funds/withdraw", {"reason": "budget cut"}, by="lille")
    assert await due_everywhere(api, "lille-funds") == same(0)
    totals = await money_totals(api, "donor", "lille")
    assert (totals["pledged"], totals["committed"], totals["received"], totals["outstanding"]) == (
        1_000_000,
        1_000_000,
        1_000_000,
        0,
    )
    [row] = (await api.get("/v1/reports/pledges"))["rows"]
    assert (row["value"], row["committed"], row["received"]) == (3_000_000, 1_000_000, 1_000_000)
    coverage = (await api.get("/v1/needs/kharkiv-fund"))["coverage"]
    assert (coverage["committed"], coverage["delivered"]) == (1_000_000, 1_000_000)


async def test_a_line_only_pledged_has_nothing_outstanding_yet_and_its_commitment_makes_it_due(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/pledges", pledge("leeds-funds", money_line(500_000, need=None)), by="leeds")
    assert await due_everywhere(api, "leeds-funds") == same(0)
    totals = await money_totals(api, "donor", "leeds")
    assert (totals["pledged"], totals["committed"], totals["outstanding"]) == (500_000, 0, 0)
    await api.ok("/v1/pledges/leeds-funds/commit", {}, by="leeds")
    assert await due_everywhere(api, "leeds-funds") == same(500_000)
    totals = await money_totals(api, "donor", "leeds")
    assert (totals["committed"], totals["outstanding"]) == (500_000, 500_000)


async def test_the_pledges_reports_outstanding_column_sums_to_the_totals(api: PledgesApi) -> None:
    """Committed with part received, only pledged, committed then withdrawn: each line's
    outstanding in the report adds up to the recipient's totals, and is committed less
    received line by line."""
    await api.ok("/v1/needs", FUND, by="kharkiv")
    await api.ok("/v1/pledges", pledge("a", money_line(1_000_000), commit=True), by="lille")
    await receive(api, "a", 400_000)
    await api.ok("/v1/pledges", pledge("b", money_line(700_000)), by="leeds")
    await api.ok("/v1/pledges", pledge("c", money_line(900_000), commit=True), by="chu-lille")
    await receive(api, "c", 100_000)
    await api.ok("/v1/pledges/c/withdraw", {"reason": "budget cut"}, by="chu-lille")
    rows = (await api.get("/v1/reports/pledges", recipient="kharkiv"))["rows"]
    assert {r["pledge_id"]: r["outstanding"] for r in rows} == {"a": 600_000, "b": 0, "c": 0}
    assert all(r["outstanding"] == r["committed"] - r["received"] for r in rows)
    totals = await money_totals(api, "recipient", "kharkiv")
    assert sum(r["outstanding"] for r in rows) == totals["outstanding"] == 600_000
    assert sum(r["committed"] for r in rows) == totals["committed"] == 1_100_000
    assert totals["outstanding"] == totals["committed"] - totals["received"]


async def test_goods_remaining_follow_the_same_rule(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    assert await due_everywhere(api, "lille-generators") == same("0")  # only pledged
    await api.ok("/v1/pledges/lille-generators/commit", {}, by="lille")
    assert await due_everywhere(api, "lille-generators") == same("100")
    await deliver(runner, "30")
    assert await due_everywhere(api, "lille-generators") == same("70")
    await api.ok("/v1/pledges/lille-generators/withdraw", {"reason": "no lorries"}, by="lille")
    assert await due_everywhere(api, "lille-generators") == same("0")
    # the event shipments reads keeps its contract: quantity - delivered, and the status
    last = (await api.events("pledges.pledge-line-updated"))[-1]
    assert (last["remaining"], last["status"]) == ("70", "withdrawn")
    [totals] = [
        r
        for r in (await api.get("/v1/reports/totals", by="donor"))["rows"]
        if r["organisation_id"] == "lille"
    ]
    assert (totals["pledged_quantity"], totals["committed_quantity"]) == ("30", "30")


async def needs_gap_everywhere(api: PledgesApi, need_id: str) -> dict[str, Any]:
    """The need's gap in its view, the needs list, the needs report (JSON, CSV) and IATI."""
    view = await api.get(f"/v1/needs/{need_id}")
    [listed] = [n for n in (await api.get("/v1/needs"))["items"] if n["need_id"] == need_id]
    [row] = [r for r in (await api.get("/v1/reports/needs"))["rows"] if r["need_id"] == need_id]
    [cells] = [r for r in await csv_rows(api, "needs") if r["#meta+id"] == need_id]
    response = await api.client.get(
        "/v1/exports/iati", params={"organisation": "kharkiv"}, headers=await api.as_("bucha")
    )
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)  # noqa: S314 (our own export)
    [activity] = [
        a
        for a in root.findall("iati-activity")
        if a.findtext("iati-identifier", "").endswith(f"-need-{need_id}")
    ]
    description = activity.findtext("description/narrative", "")
    return {
        "view": view["coverage"]["gap"],
        "list": listed["coverage"]["gap"],
        "report": row["gap_amount"],
        "csv": int(Decimal(cells["#value+gap"]) * 100),
        "iati": description.split(", gap ")[1].rstrip("."),
    }


async def test_a_closed_or_cancelled_need_has_no_gap_in_any_view(api: PledgesApi) -> None:
    """Kharkiv asks for EUR 10,000; Lille commits EUR 5,000, EUR 1,000 arrives, Lille withdraws;
    Kharkiv closes the need. A second need of EUR 2,000 is cancelled."""
    await api.ok("/v1/needs", {**FUND, "amount": 1_000_000}, by="kharkiv")
    await api.ok("/v1/pledges", pledge("lille-funds", money_line(500_000), commit=True), by="lille")
    await receive(api, "lille-funds", 100_000)
    await api.ok("/v1/pledges/lille-funds/withdraw", {"reason": "budget cut"}, by="lille")
    gaps = await needs_gap_everywhere(api, "kharkiv-fund")
    assert gaps == {**same(900_000), "iati": "9000.00 EUR"}, gaps  # active: what is left
    await api.ok("/v1/needs/kharkiv-fund/close", {"reason": "bought locally"}, by="kharkiv")
    closed = {**FUND, "need_id": "kharkiv-fund-2", "amount": 200_000}
    await api.ok("/v1/needs", closed, by="kharkiv")
    await api.ok("/v1/needs/kharkiv-fund-2/cancel", {"reason": "posted twice"}, by="kharkiv")
    for need_id in ("kharkiv-fund", "kharkiv-fund-2"):
        gaps = await needs_gap_everywhere(api, need_id)
        iati = gaps.pop("iati")
        assert gaps == same(0), (need_id, gaps)
        assert iati.startswith("0") and iati.endswith(" EUR"), (need_id, iati)
    view = await api.get("/v1/needs/kharkiv-fund")
    assert (view["status"], view["coverage"]["pledged"], view["coverage"]["delivered"]) == (
        "closed",
        100_000,
        100_000,
    )
    totals = await money_totals(api, "recipient", "kharkiv")
    # the closed need was asked for; the cancelled one is a request withdrawn
    assert (totals["requested"], totals["funding_gap"], totals["pledged"]) == (
        1_000_000,
        0,
        100_000,
    )


def test_what_is_due_of_a_line_by_its_pledges_status() -> None:
    for status, money, goods in (
        ("pledged", 0, Decimal(0)),
        ("committed", 700, Decimal("7.5")),
        ("partly_fulfilled", 700, Decimal("7.5")),
        ("withdrawn", 0, Decimal(0)),
    ):
        assert domain.due(size=1000, arrived=300, pledge_status=status) == money
        assert domain.due(size=Decimal(10), arrived=Decimal("2.5"), pledge_status=status) == goods
    assert domain.due(size=1000, arrived=1000, pledge_status="fulfilled") == 0
    assert domain.due(size=5, arrived=8, pledge_status="committed") == 0  # amended below it
    assert domain.due(size=5, arrived=1, pledge_status=domain.PledgeStatus.COMMITTED) == 4


def test_an_ended_need_asks_for_nothing_more() -> None:
    sums = domain.Share(pledged=Decimal(10), committed=Decimal(10), delivered=Decimal(10))
    for state, gap in (("active", 90), ("closed", 0), ("cancelled", 0)):
        cov = domain.summarise(target=Decimal(100), need_state=state, sums=sums)
        assert (cov.gap, cov.pledged) == (gap, 10), state
