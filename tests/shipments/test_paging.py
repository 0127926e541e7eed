"""Every list of shipments is paged (issue 19, point 7): a convoy's timeline and manifest,
deliveries, discrepancies and the convoys on the road answer a bounded page by default and a
keyset cursor (`cursor`, `next_cursor`); walking the pages with a small limit gives every item
exactly once, in the list's order; a cursor the list did not give is a 422 problem. A convoy's
view embeds only its latest incidents (the timeline has them all)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.shipments.api.tracking import PAGE, TIMELINE_PAGE
from services.shipments.requests import TIMELINE_MAX
from services.shipments.views import INCIDENTS_SHOWN
from shared import pagination
from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry

pytestmark = pytest.mark.once  # keyset SQL any supported PostgreSQL runs alike

ORIGIN = ("lille", Role.LOGISTICS)
RECIPIENT = ("kharkiv", Role.MEMBER)
CARRIER = ("transports-nord", Role.LOGISTICS)
T0 = datetime(2022, 6, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Pages walked one item at a time and a hundred convoys made are many requests a second
    from one key: the rate limit is not what these tests are about."""
    return {"rate_limit_per_second": 100_000.0, "rate_limit_burst": 100_000}


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def walk(
    api: ShipmentsApi, path: str, who: tuple[str, Role], *, field: str = "items", **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paged list, its pages followed; and how many pages there were."""
    headers = await api.as_(*who)
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await api.client.get(path, params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        assert pages <= 1000, "the pages go on: a cursor that does not move on"
        if "limit" in params:
            assert len(body[field]) <= params["limit"]
        items += body[field]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert body[field], "a page with a next page is not empty"


async def on_the_road(
    api: ShipmentsApi, convoy_id: str, *, lines: int = 1, dispatched: float = 0
) -> None:
    """A planned convoy with `lines` manifest lines (two units each) of pledge line p1,
    dispatched `dispatched` minutes after T0."""
    await api.plan(convoy_id)
    for k in range(lines):
        loaded = await api.load(
            convoy_id, manifest_line_id=f"{convoy_id}-m{k:03}", quantity="2", weight_kg="1"
        )
        assert loaded.status_code == 201, loaded.text
    road = await api.entries(convoy_id, entry("dispatch", at(dispatched), f"{convoy_id}-d"))
    assert road.status_code == 200, road.text


async def delivered(
    api: ShipmentsApi,
    convoy_id: str,
    *,
    lines: int,
    when: float,
    short: set[int] | None = None,
) -> None:
    """The convoy arrives and the recipient confirms it `when` minutes after T0: the lines in
    `short` one unit short (all of them by default)."""
    road = await api.entries(
        convoy_id, entry("arrival", at(when - 1), f"{convoy_id}-a", place="Kharkiv")
    )
    assert road.status_code == 200, road.text
    short = set(range(lines)) if short is None else short
    confirmed = await api.client.post(
        f"/v1/convoys/{convoy_id}/delivery",
        json={
            "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
            "lines": [
                {
                    "manifest_line_id": f"{convoy_id}-m{k:03}",
                    "received": "1" if k in short else "2",
                    "damaged": "0",
                    "short": "1" if k in short else "0",
                }
                for k in range(lines)
            ],
            "occurred_at": at(when),
        },
        headers=await api.as_(*RECIPIENT),
    )
    assert confirmed.status_code == 201, confirmed.text


@pytest.fixture
async def stocked(api: ShipmentsApi) -> ShipmentsApi:
    """Pledge line p1 with plenty to load (a unit weighs 0.1 kg)."""
    await api.pledge_line(quantity="100000", weight_kg="10000")
    return api


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def refuses_cursors(
    api: ShipmentsApi, path: str, who: tuple[str, Role], cursors: list[str]
) -> None:
    headers = await api.as_(*who)
    for cursor in cursors:
        answer = await api.client.get(path, params={"cursor": cursor}, headers=headers)
        body = assert_problem(answer, 422, "validation-error")
        assert body["invalid_params"][0]["name"] == "query.cursor", (cursor, body)


async def test_a_long_timeline_comes_in_pages_in_the_order_things_happened(
    stocked: ShipmentsApi,
) -> None:
    api = stocked
    await on_the_road(api, "c1", dispatched=0)
    # more checkpoints than a default page, in two batches, the second one earlier on the road
    # than the first (sent late): the timeline orders them by when they happened
    count = TIMELINE_PAGE + 60
    half = count // 2
    late = [
        entry("checkpoint", at(1 + half + i), f"cp-{half + i}", place="Kraków") for i in range(half)
    ]
    early = [entry("checkpoint", at(1 + i), f"cp-{i}", place="Rzeszów") for i in range(half)]
    # two checkpoints at the same instant: the stream version decides
    early[-1]["occurred_at"] = early[-2]["occurred_at"]
    for batch in (late, early):
        recorded = await api.entries("c1", *batch)
        assert recorded.status_code == 200, recorded.text

    path = "/v1/convoys/c1/timeline"
    first = await api.client.get(path, headers=await api.as_(*ORIGIN))
    assert first.status_code == 200
    assert len(first.json()["entries"]) == TIMELINE_PAGE  # bounded by default
    assert first.json()["next_cursor"] and first.json()["convoy_id"] == "c1"

    whole, _ = await walk(api, path, ORIGIN, field="entries", limit=TIMELINE_MAX)
    assert len(whole) == count + 3  # planned, loaded, dispatched and the checkpoints
    for limit in (7, 50, TIMELINE_PAGE):
        entries, pages = await walk(api, path, ORIGIN, field="entries", limit=limit)
        assert entries == whole
        assert pages == -(-len(whole) // limit)
    ids = [e["event_id"] for e in whole]
    assert len(set(ids)) == len(ids)
    order = [(datetime.fromisoformat(e["occurred_at"]), e["version"]) for e in whole]
    assert order == sorted(order)
    checkpoints = [e["entry_id"] for e in whole if e["event_type"].endswith("checkpoint-recorded")]
    assert checkpoints == [f"cp-{i}" for i in range(count)]
    # the same events as the convoy's log holds, nothing left out
    assert len(whole) == await api.count("convoy_timeline")

    too_many = await api.client.get(
        path, params={"limit": TIMELINE_MAX + 1}, headers=await api.as_(*ORIGIN)
    )
    assert_problem(too_many, 422)
    await refuses_cursors(
        api,
        path,
        ORIGIN,
        [
            "garbage!",
            "x" * 400,
            b64([at(0)]),
            b64([at(0), "not-a-version"]),
            b64([at(0), "-1"]),
            b64([at(0), "9" * 40]),
            b64(["Kraków", "3"]),
            b64({"occurred_at": at(0)}),
        ],
    )


async def test_deliveries_and_discrepancies_come_line_by_line_across_convoys(
    stocked: ShipmentsApi,
) -> None:
    """Pages cut inside a convoy and across convoys; two deliveries at the same instant are
    in convoy id order."""
    api = stocked
    plan = {"c-a": (3, 50, 500, {0, 2}), "c-b": (2, 30, 400, {1}), "c-c": (3, 40, 400, {0, 1, 2})}
    for convoy_id, (lines, dispatched, when, short) in plan.items():
        await on_the_road(api, convoy_id, lines=lines, dispatched=dispatched)
        await delivered(api, convoy_id, lines=lines, when=when, short=short)

    # newest delivery first (c-a), then c-b and c-c (same instant, by id), manifest order
    deliveries = [(c, f"{c}-m{k:03}") for c in ("c-a", "c-b", "c-c") for k in range(plan[c][0])]
    # newest departure first: c-a, c-c, c-b
    discrepancies = [(c, f"{c}-m{k:03}") for c in ("c-a", "c-c", "c-b") for k in sorted(plan[c][3])]
    for path, expected in (("/v1/deliveries", deliveries), ("/v1/discrepancies", discrepancies)):
        for who in (ORIGIN, RECIPIENT, CARRIER):
            whole, pages = await walk(api, path, who)
            assert pages == 1
            assert [(x["convoy_id"], x["manifest_line_id"]) for x in whole] == expected
            for limit in (1, 2, 3, 4):
                items, pages = await walk(api, path, who, limit=limit)
                assert items == whole, (path, limit)
                assert pages == -(-len(expected) // limit)
        await refuses_cursors(
            api,
            path,
            ORIGIN,
            [
                "%%%",
                b64([at(0), "c-a"]),  # a convoys cursor: two parts, these lists take three
                b64([at(0), "c-a", 3]),
                b64(["c-a", "c-a", "c-a-m000"]),
                b64([at(0), "c-a", "c-a-m000", "more"]),
                b64(None),
            ],
        )
    # another key of the origin (which also gave the goods) walks the same lines
    donor, _ = await walk(api, "/v1/discrepancies", ("lille", Role.MEMBER), limit=1)
    assert [(x["convoy_id"], x["manifest_line_id"]) for x in donor] == discrepancies


async def test_deliveries_and_discrepancies_are_bounded_by_default(
    stocked: ShipmentsApi,
) -> None:
    """One convoy of more lines than a page: the default page is PAGE lines, the rest on the
    next; as CSV, the next page is named in a Link header."""
    api = stocked
    lines = PAGE + 3
    await on_the_road(api, "big", lines=lines)
    await delivered(api, "big", lines=lines, when=600)
    headers = await api.as_(*ORIGIN)
    for path in ("/v1/deliveries", "/v1/discrepancies"):
        first = (await api.client.get(path, headers=headers)).json()
        assert len(first["items"]) == PAGE and first["next_cursor"]
        rest = (
            await api.client.get(path, params={"cursor": first["next_cursor"]}, headers=headers)
        ).json()
        assert len(rest["items"]) == 3 and rest["next_cursor"] is None
        got = [x["manifest_line_id"] for x in first["items"] + rest["items"]]
        assert got == [f"big-m{k:03}" for k in range(lines)]

        csv_first = await api.client.get(path, params={"format": "csv"}, headers=headers)
        assert csv_first.status_code == 200
        assert len(csv_first.text.strip().splitlines()) == 2 + PAGE  # header, hashtags, rows
        link = csv_first.headers["link"]
        assert link.endswith('>; rel="next"') and "cursor=" in link
        csv_rest = await api.client.get(link[1 : link.index(">")], headers=headers)
        assert csv_rest.status_code == 200 and "link" not in csv_rest.headers
        assert len(csv_rest.text.strip().splitlines()) == 2 + 3
        too_many = await api.client.get(
            path, params={"limit": pagination.MAX_LIMIT + 1}, headers=headers
        )
        assert_problem(too_many, 422)


async def test_convoys_on_the_road_come_in_pages_stalest_news_first(
    stocked: ShipmentsApi,
) -> None:
    api = stocked
    # dispatch times (minutes after T0); c-3 gives news later than anyone; c-1 and c-2 tie
    for convoy_id, dispatched in (("c-0", 30), ("c-1", 10), ("c-2", 10), ("c-3", 0), ("c-4", 20)):
        await on_the_road(api, convoy_id, dispatched=dispatched)
    news = await api.entries("c-3", entry("checkpoint", at(90), "c3-cp", place="Kraków"))
    assert news.status_code == 200, news.text
    expected = ["c-1", "c-2", "c-4", "c-0", "c-3"]
    path = "/v1/tracking/in-transit"
    whole, pages = await walk(api, path, ORIGIN)
    assert pages == 1 and [x["convoy_id"] for x in whole] == expected
    for limit in (1, 2, 4):
        items, pages = await walk(api, path, ORIGIN, limit=limit)
        assert [x["convoy_id"] for x in items] == expected
        assert pages == -(-len(expected) // limit)
    headers = await api.as_(*ORIGIN)
    page = (await api.client.get(path, params={"limit": 2}, headers=headers)).json()
    assert page["as_of"] and page["next_cursor"]
    await refuses_cursors(
        api, path, ORIGIN, ["=", b64([at(0)]), b64(["c-1", "c-1"]), b64([1, 2]), b64([at(0), None])]
    )


async def test_convoys_on_the_road_are_bounded_by_default(stocked: ShipmentsApi) -> None:
    api = stocked
    total = PAGE + 1
    for n in range(total):
        await on_the_road(api, f"r{n:03}", dispatched=n)
    headers = await api.as_(*ORIGIN)
    first = (await api.client.get("/v1/tracking/in-transit", headers=headers)).json()
    assert len(first["items"]) == PAGE and first["next_cursor"]
    rest = (
        await api.client.get(
            "/v1/tracking/in-transit", params={"cursor": first["next_cursor"]}, headers=headers
        )
    ).json()
    assert [x["convoy_id"] for x in first["items"] + rest["items"]] == [
        f"r{n:03}" for n in range(total)
    ]
    assert rest["next_cursor"] is None


async def test_a_manifest_comes_in_pages_in_the_order_it_was_loaded(stocked: ShipmentsApi) -> None:
    api = stocked
    lines = PAGE + 4
    await on_the_road(api, "big", lines=lines)
    expected = [f"big-m{k:03}" for k in range(lines)]
    path = "/v1/convoys/big/manifest"
    headers = await api.as_(*ORIGIN)
    first = (await api.client.get(path, headers=headers)).json()
    assert len(first["items"]) == PAGE and first["next_cursor"]  # bounded by default
    assert first["convoy_id"] == "big"
    for who in (ORIGIN, RECIPIENT, CARRIER):
        whole, pages = await walk(api, path, who)
        assert [x["manifest_line_id"] for x in whole] == expected and pages == 2
        # the lines as the convoy's view shows them to the same key
        assert whole == (await api.convoy("big", who=who))["manifest"]
    for limit in (1, 3, pagination.MAX_LIMIT):
        items, pages = await walk(api, path, ORIGIN, limit=limit)
        assert [x["manifest_line_id"] for x in items] == expected
        assert pages == -(-lines // limit)
    await refuses_cursors(
        api, path, ORIGIN, ["~~", b64(["no-such-line"]), b64(["big-m000", "x"]), b64([3])]
    )
    # a cursor of another convoy's manifest names no line of this one
    await on_the_road(api, "small", lines=2)
    small = (
        await api.client.get("/v1/convoys/small/manifest", params={"limit": 1}, headers=headers)
    ).json()
    await refuses_cursors(api, path, ORIGIN, [small["next_cursor"]])
    outsider = await api.client.get(path, headers=await api.as_("bucha", Role.MEMBER))
    assert_problem(outsider, 403)
    assert_problem(await api.client.get("/v1/convoys/none/manifest", headers=headers), 404)


async def test_the_convoy_view_embeds_its_latest_incidents_the_timeline_has_them_all(
    stocked: ShipmentsApi,
) -> None:
    api = stocked
    await on_the_road(api, "c1")
    count = INCIDENTS_SHOWN + 5
    delays = [
        entry("incident", at(1 + i), f"delay-{i:03}", incident="delay", description=f"#{i}")
        for i in range(count)
    ]
    recorded = await api.entries("c1", *delays)
    assert recorded.status_code == 200, recorded.text
    view = await api.convoy("c1")
    assert view["incidents_total"] == count
    assert [x["entry_id"] for x in view["incidents"]] == [
        f"delay-{i:03}" for i in range(count - INCIDENTS_SHOWN, count)
    ]
    earlier = (
        await api.client.get(
            "/v1/convoys/c1", params={"as_of": at(3.5)}, headers=await api.as_(*ORIGIN)
        )
    ).json()
    assert earlier["incidents_total"] == 3
    assert [x["entry_id"] for x in earlier["incidents"]] == ["delay-000", "delay-001", "delay-002"]
    timeline, _ = await walk(api, "/v1/convoys/c1/timeline", ORIGIN, field="entries", limit=40)
    assert [e["entry_id"] for e in timeline if (e["entry_id"] or "").startswith("delay-")] == [
        f"delay-{i:03}" for i in range(count)
    ]
