"""Proof of delivery over HTTP: the recipient's figures must add up, the event keeps each
pledge's correlation id, and discrepancies reach the sender and each line's donor."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry


@pytest.fixture
async def arrived(api: ShipmentsApi) -> ShipmentsApi:
    """Convoy c1 from Lille, arrived in Kharkiv with antibiotics from the CHU and blankets from
    Leeds Charity Lunch; one box of antibiotics was stolen on the way."""
    await api.pledge_line(
        pledge_id="chu",
        line_id="amox",
        donor_id="chu-lille",
        item="Amoxicillin, boxes",
        unit="boxes",
        quantity="200",
        weight_kg="1200",
        correlation_id="corr-chu",
    )
    await api.pledge_line(
        pledge_id="lcl",
        line_id="blankets",
        donor_id="leeds-charity-lunch",
        item="Wool blankets",
        unit="pieces",
        quantity="300",
        weight_kg="600",
        correlation_id="corr-lcl",
    )
    await api.plan("c1")
    await api.load(manifest_line_id="m1", pledge_id="chu", line_id="amox", quantity="100")
    await api.load(manifest_line_id="m2", pledge_id="lcl", line_id="blankets", quantity="300")
    response = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d"),
        entry(
            "incident",
            "2022-06-09T02:00:00+03:00",
            "t",
            incident="theft",
            description="one box taken from the trailer at a night stop",
            lines=[{"manifest_line_id": "m1", "quantity": "1"}],
        ),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv"),
    )
    assert response.status_code == 200, response.text
    return api


def delivery(m1: tuple[str, str, str], m2: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    return {
        "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
        "lines": [
            {"manifest_line_id": "m1", "received": m1[0], "damaged": m1[1], "short": m1[2]},
            {"manifest_line_id": "m2", "received": m2[0], "damaged": m2[1], "short": m2[2]},
        ],
        "occurred_at": "2022-06-10T12:00:00+03:00",
        **extra,
    }


async def confirm(api: ShipmentsApi, body: dict[str, Any], **headers: str) -> Any:
    return await api.client.post(
        "/v1/convoys/c1/delivery",
        json=body,
        headers={**await api.as_("kharkiv", Role.MEMBER), **headers},
    )


async def test_figures_that_do_not_add_up_are_refused_with_the_arithmetic(
    arrived: ShipmentsApi,
) -> None:
    api = arrived
    before = await api.count()
    short_count = assert_problem(
        await confirm(api, delivery(("97", "1", "0"), ("300", "0", "0"))),
        422,
        "delivery-arithmetic",
    )
    assert (
        "line m1 (Amoxicillin, boxes, boxes): received 97 + damaged 1 + short 0 = 98,"
        " but loaded 100 - lost 1 = 99" in short_count["detail"]
    )
    assert "m2" not in short_count["detail"]
    more = assert_problem(
        await confirm(api, delivery(("99", "1", "0"), ("301", "0", "0"))),
        422,
        "delivery-arithmetic",
    )
    assert (
        "line m1 (Amoxicillin, boxes, boxes): received 99 + damaged 1 + short 0 = 100,"
        " but loaded 100 - lost 1 = 99" in more["detail"]
    )
    assert (
        "received 301 + damaged 0 + short 0 = 301, but loaded 300 - lost 0 = 300"
        in (more["detail"])
    )
    assert [line["total"] for line in more["lines"]] == ["100", "301"]
    assert await api.count() == before


async def test_every_manifest_line_must_be_given_once(arrived: ShipmentsApi) -> None:
    api = arrived
    body = delivery(("98", "1", "0"), ("300", "0", "0"))
    body["lines"] = [
        body["lines"][0],
        {**body["lines"][0]},
        {**body["lines"][1], "manifest_line_id": "m9"},
    ]
    problem = assert_problem(await confirm(api, body), 422)
    assert "not on the manifest: m9; given twice: m1; missing: m2" in problem["detail"]


async def test_the_delivery_event_is_the_contract_and_a_retry_changes_nothing(
    arrived: ShipmentsApi,
) -> None:
    api = arrived
    body = delivery(
        ("98", "1", "0"),
        ("290", "0", "10"),
        document={"name": "receipt-c1.pdf", "sha256": "0f" * 32},
    )
    first = await confirm(api, body, **{"Idempotency-Key": "pod-c1"})
    assert first.status_code == 201, first.text
    assert first.json()["outcome"] == "partial"
    retry = await confirm(api, body, **{"Idempotency-Key": "pod-c1"})
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert_problem(await confirm(api, body), 409, "convoy-status")

    conn = await asyncpg.connect(api.url)
    try:
        rows = await conn.fetch(
            "SELECT data, metadata FROM events WHERE event_type = 'shipments.delivery-confirmed'"
        )
    finally:
        await conn.close()
    [row] = rows
    data = json.loads(row["data"])
    assert set(data) == {
        "convoy_id",
        "recipient_id",
        "origin_id",
        "carrier_id",
        "confirmed_by",
        "document",
        "lines",
    }
    assert [(x["line_id"], x["correlation_id"]) for x in data["lines"]] == [
        ("amox", "corr-chu"),
        ("blankets", "corr-lcl"),
    ]
    for line in data["lines"]:
        total = sum(int(line[k]) for k in ("received", "damaged", "short"))
        assert total == int(line["loaded"]) - int(line["lost"])
    # two pledges on board: the event keeps the request's own correlation id
    assert json.loads(row["metadata"])["correlation_id"] not in ("corr-chu", "corr-lcl")
    loaded = await api.events("shipments.manifest-line-loaded")
    assert [x["correlation_id"] for x in loaded] == ["corr-chu", "corr-lcl"]


async def test_only_the_recipient_confirms_and_only_after_arrival(api: ShipmentsApi) -> None:
    await api.pledge_line(quantity="10")
    await api.plan("c1")
    await api.load(manifest_line_id="m1", quantity="10")
    await api.entries("c1", entry("dispatch", "2022-06-07T06:10:00+02:00", "d"))
    body = {
        "receiver": {"name": "N. Koval", "role": "warehouse manager"},
        "lines": [{"manifest_line_id": "m1", "received": "10"}],
    }
    early = await confirm(api, body)
    assert "record its arrival first" in assert_problem(early, 409, "convoy-status")["detail"]
    await api.entries("c1", entry("arrival", "2022-06-10T10:00:00+03:00", "a"))
    for who in [("lille", Role.LOGISTICS), ("transports-nord", Role.LOGISTICS)]:
        response = await api.client.post(
            "/v1/convoys/c1/delivery", json=body, headers=await api.as_(*who)
        )
        assert_problem(response, 403)
    auditor = await api.client.post(
        "/v1/convoys/c1/delivery", json=body, headers=await api.as_("audit", Role.AUDITOR)
    )
    assert_problem(auditor, 403)
    done = await confirm(api, body)
    assert done.status_code == 201, done.text
    assert done.json() == {
        "convoy_id": "c1",
        "status": "delivered",
        "version": 5,
        "outcome": "full",
        "discrepancies": [],
    }
    [event] = await api.events("shipments.delivery-confirmed")
    assert event["document"] is None
    conn = await asyncpg.connect(api.url)
    try:
        meta = await conn.fetchval(
            "SELECT metadata FROM events WHERE event_type = 'shipments.delivery-confirmed'"
        )
    finally:
        await conn.close()
    assert json.loads(meta)["correlation_id"] == "corr-p1"  # one pledge: its flow goes on


async def discrepancies(api: ShipmentsApi, organisation: str, role: Role) -> list[Any]:
    response = await api.client.get("/v1/discrepancies", headers=await api.as_(organisation, role))
    assert response.status_code == 200, response.text
    return [
        (d["manifest_line_id"], d["damaged"], d["short"], d["lost"])
        for d in response.json()["items"]
    ]


async def test_discrepancies_reach_the_sender_and_each_lines_donor_only(
    arrived: ShipmentsApi,
) -> None:
    api = arrived
    response = await confirm(api, delivery(("98", "1", "0"), ("290", "0", "10")))
    assert response.status_code == 201, response.text
    assert response.json()["discrepancies"][0]["lost"] == "1"

    both = [("m1", "1", "0", "1"), ("m2", "0", "10", "0")]
    assert await discrepancies(api, "lille", Role.MEMBER) == both
    assert await discrepancies(api, "kharkiv", Role.MEMBER) == both
    assert await discrepancies(api, "audit", Role.AUDITOR) == both
    assert await discrepancies(api, "chu-lille", Role.MEMBER) == [both[0]]
    assert await discrepancies(api, "leeds-charity-lunch", Role.MEMBER) == [both[1]]
    assert await discrepancies(api, "bucha", Role.MEMBER) == []

    seen_by_chu = await api.convoy(who=("chu-lille", Role.MEMBER))
    delivered = {x["manifest_line_id"]: x["delivered"] for x in seen_by_chu["manifest"]}
    assert delivered == {"m1": {"received": "98", "damaged": "1", "short": "0"}, "m2": None}
