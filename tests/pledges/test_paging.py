"""Every list of pledges is paged (issue 19, point 7): the needs and pledges reports answer a
bounded page by default and a keyset cursor (`cursor`, `next_cursor`; as CSV the next page in a
`Link` header); a need's and a pledge's history a page of events in version order (`after`,
`limit`, `next_after`, as the audit history). Walking the pages with a small limit gives every
item exactly once, in the list's order; a cursor the list did not give is a 422 problem."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from services.pledges import events as ev
from services.pledges.api.reports import PAGE
from services.pledges.queries import RECENT
from services.pledges.requests import HISTORY_MAX, HISTORY_PAGE
from shared import pagination
from shared.auth import Role
from tests.pledges.conftest import (
    GENERATORS_NEED,
    ORGANISATIONS,
    PledgesApi,
    assert_problem,
    generators_pledge,
)

pytestmark = pytest.mark.once  # keyset SQL any supported PostgreSQL runs alike

AUDITOR = ("twinaid", Role.AUDITOR)


async def walk(
    api: PledgesApi, path: str, *, field: str = "rows", bounded: bool = True, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list paged by cursor, its pages followed; and how many pages.
    `bounded`: `limit` bounds the items of a page (the totals: the organisations)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        body = await api.get(path, **params, **({"cursor": cursor} if cursor else {}))
        pages += 1
        assert pages <= 1000, "the pages go on: a cursor that does not move on"
        if "limit" in params and bounded:
            assert len(body[field]) <= params["limit"]
        items += body[field]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert body[field], "a page with a next page is not empty"


async def history(api: PledgesApi, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every event of a record's history, its pages followed (`after` = `next_after`)."""
    events: list[dict[str, Any]] = []
    after = 0
    pages = 0
    while True:
        body = await api.get(path, reader=AUDITOR[0], role=AUDITOR[1], after=after, **params)
        pages += 1
        assert pages <= 1000, "the pages go on"
        if "limit" in params:
            assert len(body["events"]) <= params["limit"]
        events += body["events"]
        if body["next_after"] is None:
            return events, pages
        assert body["events"], "a page with a next page is not empty"
        after = body["next_after"]


SOONER = "2022-12-01T00:00:00Z"  # before any pledge below, which answer the need


def need(need_id: str, at: str) -> dict[str, Any]:
    return {**GENERATORS_NEED, "need_id": need_id, "occurred_at": at}


async def needs(api: PledgesApi, posted: list[tuple[str, str]]) -> list[str]:
    """Kharkiv's needs posted at the instants given (some alike): their ids in report order."""
    for need_id, at in posted:
        await api.ok("/v1/needs", need(need_id, at), by="kharkiv")
    return [n for n, _ in sorted(posted, key=lambda p: (p[1], p[0]))]


async def pledges(api: PledgesApi, made: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Lille's pledges to Kharkiv made at the instants given, two lines each (line "b" before
    line "a"): (pledge, line) in report order."""
    for pledge_id, at in made:
        line = generators_pledge()["lines"][0]
        body = generators_pledge(
            pledge_id=pledge_id,
            occurred_at=at,
            lines=[{**line, "line_id": "b", "quantity": "1"}, {**line, "line_id": "a"}],
        )
        await api.ok("/v1/pledges", body, by="lille")
    return [(p, line) for p, _ in sorted(made, key=lambda m: (m[1], m[0])) for line in "ba"]


async def test_the_needs_report_walked_a_page_at_a_time_gives_every_need_once_in_order(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")  # posted now: the last
    expected = await needs(
        api,
        [
            ("n-e", "2023-01-05T00:00:00Z"),
            ("n-b", "2023-01-01T00:00:00Z"),
            ("n-d", "2023-01-03T00:00:00Z"),
            ("n-a", "2023-01-03T00:00:00Z"),  # same instant: by id
            ("n-c", "2023-01-03T00:00:00Z"),
        ],
    ) + ["kharkiv-generators"]
    for limit in (1, 2, 4):
        rows, pages = await walk(api, "/v1/reports/needs", recipient="kharkiv", limit=limit)
        assert [r["need_id"] for r in rows] == expected
        assert pages == -(-len(expected) // limit)
    filtered, _ = await walk(api, "/v1/reports/needs", limit=2, **{"from": "2023-01-02"})
    assert [r["need_id"] for r in filtered] == expected[1:]


async def test_the_pledges_report_walked_a_page_at_a_time_gives_every_line_once_in_order(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", need("kharkiv-generators", SOONER), by="kharkiv")
    expected = await pledges(
        api,
        [
            ("p-c", "2023-02-03T00:00:00Z"),
            ("p-a", "2023-02-01T00:00:00Z"),
            ("p-d", "2023-02-01T00:00:00Z"),
            ("p-b", "2023-02-01T00:00:00Z"),
        ],
    )
    for limit in (1, 3, 5):  # pages that end inside a pledge's lines
        rows, pages = await walk(api, "/v1/reports/pledges", limit=limit)
        assert [(r["pledge_id"], r["line_id"]) for r in rows] == expected
        assert pages == -(-len(expected) // limit)


async def test_the_reports_answer_a_bounded_page_by_default(api: PledgesApi) -> None:
    await api.ok("/v1/needs", need("kharkiv-generators", SOONER), by="kharkiv")
    posted = [(f"n-{k:03}", f"2023-01-01T00:{k // 60:02}:{k % 60:02}Z") for k in range(PAGE + 2)]
    expected_needs = await needs(api, posted)
    expected_lines = await pledges(
        api, [(f"p-{k:03}", f"2023-02-01T00:00:{k:02}Z") for k in range(PAGE // 2 + 1)]
    )
    for name, expected, key in (
        ("needs", ["kharkiv-generators", *expected_needs], lambda r: r["need_id"]),
        ("pledges", expected_lines, lambda r: (r["pledge_id"], r["line_id"])),
    ):
        first = await api.get(f"/v1/reports/{name}")
        assert len(first["rows"]) == PAGE and first["next_cursor"]
        rows, pages = await walk(api, f"/v1/reports/{name}")
        assert pages == 2
        assert sorted(map(key, rows)) == sorted(expected) and len(rows) == len(expected)
        too_many = await api.client.get(
            f"/v1/reports/{name}",
            params={"limit": pagination.MAX_LIMIT + 1},
            headers=await api.as_("bucha"),
        )
        assert_problem(too_many, 422)


async def test_a_report_as_csv_is_a_page_naming_the_next_in_a_link_header(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", need("kharkiv-generators", SOONER), by="kharkiv")
    expected = await pledges(api, [(f"p-{k}", f"2023-02-0{k + 1}T00:00:00Z") for k in range(3)])
    headers = await api.as_("bucha")
    url: str | None = "http://t/v1/reports/pledges?format=csv&limit=4"
    got, pages = [], 0
    while url is not None:
        answer = await api.client.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        table = list(csv.reader(io.StringIO(answer.text)))
        assert table[1][0].startswith("#"), "the HXL row under the header"
        assert len(table) - 2 <= 4
        got += [(row[0], row[1]) for row in table[2:]]
        pages += 1
        link = answer.headers.get("link")
        if link is None:
            url = None
        else:
            found = re.fullmatch(r'<([^>]+)>; rel="next"', link)
            assert found, link
            url = found[1]
            assert "format=csv" in url and "limit=4" in url
    assert got == expected and pages == 2


async def test_a_need_history_walked_a_page_at_a_time_gives_every_event_once_in_order(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    for k in range(HISTORY_PAGE + 1):
        await api.ok(
            "/v1/needs/kharkiv-generators/revisions",
            {"quantity": str(101 + k), "reason": f"revision {k}"},
            by="kharkiv",
        )
    path = "/v1/needs/kharkiv-generators/history"
    whole = await api.get(path, reader=AUDITOR[0], role=AUDITOR[1])
    assert len(whole["events"]) == HISTORY_PAGE and whole["next_after"] == HISTORY_PAGE
    events, pages = await history(api, path)
    assert pages == 2
    assert [e["stream_version"] for e in events] == list(range(1, HISTORY_PAGE + 3))
    small, pages = await history(api, path, limit=7)
    assert small == events and pages == -(-(HISTORY_PAGE + 2) // 7)
    assert (await api.get(path, reader="kharkiv", limit=HISTORY_MAX))["next_after"] is None
    # the need's view and the list embed its latest revisions only, and say how many
    for view in (
        await api.get("/v1/needs/kharkiv-generators"),
        (await api.get("/v1/needs", recipient="kharkiv"))["items"][0],
    ):
        assert view["revisions_total"] == HISTORY_PAGE + 1
        assert [r["reason"] for r in view["revisions"]] == [
            f"revision {k}" for k in range(HISTORY_PAGE + 1 - RECENT, HISTORY_PAGE + 1)
        ]


async def test_a_pledge_history_walked_a_page_at_a_time_gives_every_event_once_in_order(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    for k in range(5):
        await api.ok(
            "/v1/pledges/lille-generators/lines/generators/amendments",
            {"quantity": str(90 - k), "reason": f"amendment {k}"},
            by="lille",
        )
    path = "/v1/pledges/lille-generators/history"
    events, pages = await history(api, path, limit=2)
    assert [e["stream_version"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert pages == 3
    whole = await api.get(path, reader="lille")
    assert whole["events"] == events and whole["next_after"] is None


@pytest.mark.parametrize("path", ["/v1/reports/needs", "/v1/reports/pledges", "/v1/reports/totals"])
@pytest.mark.parametrize(
    "cursor",
    [
        "!!!!",
        "bm90IGpzb24",
        pagination.encode(["zzz", "zzz"]),
        pagination.encode(["2023-01-01T00:00:00+00:00", "x", "one"]),
        pagination.encode(["2023-01-01T00:00:00+00:00", "x", "9" * 12]),
    ],
)
async def test_a_cursor_a_report_did_not_give_is_a_422_problem(
    api: PledgesApi, path: str, cursor: str
) -> None:
    answer = await api.client.get(path, params={"cursor": cursor}, headers=await api.as_("bucha"))
    problem = assert_problem(answer, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["query.cursor"]


@pytest.mark.parametrize("kind", ["needs", "pledges"])
@pytest.mark.parametrize(
    "params", [{"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": str(HISTORY_MAX + 1)}]
)
async def test_a_history_page_out_of_bounds_is_a_422_problem(
    api: PledgesApi, kind: str, params: dict[str, str]
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    record = "kharkiv-generators" if kind == "needs" else "lille-generators"
    answer = await api.client.get(
        f"/v1/{kind}/{record}/history", params=params, headers=await api.as_(*AUDITOR)
    )
    assert_problem(answer, 422)


async def test_the_totals_walked_a_page_at_a_time_give_each_organisation_once_whole(
    api: PledgesApi,
) -> None:
    """A page of totals is a page of organisations, each with all its rows."""
    units = (await api.get("/v1/reference"))["units"]
    for org in ORGANISATIONS:
        for k, unit in enumerate(units[:2]):
            need_id = "kharkiv-generators" if (org, k) == ("kharkiv", 0) else f"{org}-{k}"
            body = {**GENERATORS_NEED, "need_id": need_id, "unit": unit}
            await api.ok("/v1/needs", body, by=org)
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    for donor in ("leeds", "fondation-de-lille", "chu-lille"):
        body = generators_pledge(pledge_id=f"{donor}-generators", partnership_id=None)
        await api.ok("/v1/pledges", body, by=donor)
    for by, organisations in (
        ("recipient", sorted(ORGANISATIONS)),
        ("donor", sorted(["lille", "leeds", "fondation-de-lille", "chu-lille"])),
    ):
        whole = await api.get("/v1/reports/totals", by=by, limit=pagination.MAX_LIMIT)
        assert whole["next_cursor"] is None
        rows, _ = await walk(api, "/v1/reports/totals", bounded=False, by=by, limit=2)
        assert rows == whole["rows"]
        for limit in (1, 3):
            seen: list[str] = []
            cursor = None
            for _ in range(len(organisations) + 1):
                page = await api.get(
                    "/v1/reports/totals",
                    by=by,
                    limit=limit,
                    **({"cursor": cursor} if cursor else {}),
                )
                on_page = list(dict.fromkeys(r["organisation_id"] for r in page["rows"]))
                assert len(on_page) <= limit and not set(on_page) & set(seen)
                seen += on_page
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == organisations, by
        assert sorted({r["organisation_id"] for r in whole["rows"]}) == organisations
        if by == "recipient":
            whole_recipients = whole["rows"]
    # one recipient's totals (the board's municipality page): one page
    kharkiv = await api.get("/v1/reports/totals", recipient="kharkiv", limit=1)
    assert kharkiv["next_cursor"] is None
    assert {r["organisation_id"] for r in kharkiv["rows"]} == {"kharkiv"}
    assert kharkiv["rows"] == [r for r in whole_recipients if r["organisation_id"] == "kharkiv"]


async def test_every_paged_list_answers_a_bounded_page_by_default(api: PledgesApi) -> None:
    """The documented default page of each list, below its documented maximum."""
    paths = api.app.openapi()["paths"]
    defaults = {}
    for path in (
        "/v1/reports/needs",
        "/v1/reports/pledges",
        "/v1/reports/totals",
        "/v1/needs/{need_id}/history",
        "/v1/pledges/{pledge_id}/history",
    ):
        limit = next(p for p in paths[path]["get"]["parameters"] if p["name"] == "limit")
        defaults[path] = (limit["schema"]["default"], limit["schema"]["maximum"])
    assert defaults == {
        "/v1/reports/needs": (PAGE, pagination.MAX_LIMIT),
        "/v1/reports/pledges": (PAGE, pagination.MAX_LIMIT),
        "/v1/reports/totals": (PAGE, pagination.MAX_LIMIT),
        "/v1/needs/{need_id}/history": (HISTORY_PAGE, HISTORY_MAX),
        "/v1/pledges/{pledge_id}/history": (HISTORY_PAGE, HISTORY_MAX),
    }


async def test_a_pledge_line_embeds_its_latest_amendments_and_receipts_only(
    api: PledgesApi,
) -> None:
    """A line's view is bounded however long its history: the latest RECENT amendments and
    receipts, with how many there are (the pledge's history pages through them all)."""
    await api.ok("/v1/needs", need("kharkiv-generators", SOONER), by="kharkiv")
    money = {
        "line_id": "funds",
        "kind": "money",
        "item": "Convoy funding",
        "category": "medicines",
        "amount": 10_000_000,
        "currency": "EUR",
    }
    lines = [*generators_pledge()["lines"], money]
    body = generators_pledge(lines=lines, commit=True, occurred_at="2023-02-01T00:00:00Z")
    await api.ok("/v1/pledges", body, by="lille")
    count = RECENT + 2
    for k in range(count):
        await api.ok(
            "/v1/pledges/lille-generators/lines/generators/amendments",
            {"quantity": str(99 - k % 50), "reason": f"amendment {k}"},
            by="lille",
        )
        await api.ok(
            "/v1/pledges/lille-generators/lines/funds/receipts",
            {
                "amount": 100,
                "currency": "EUR",
                "received_on": "2023-02-22",
                "reference": f"SEPA {k}",
            },
            by="kharkiv",
        )
    generators, funds = (await api.get("/v1/pledges/lille-generators", reader="lille"))["lines"]
    assert generators["amendments_total"] == count
    assert [a["reason"] for a in generators["amendments"]] == [
        f"amendment {k}" for k in range(count - RECENT, count)
    ]
    assert generators["deliveries"] == [] and generators["deliveries_total"] == 0
    assert funds["receipts_total"] == count and funds["recipient_confirmed"] == 100 * count
    assert [r["reference"] for r in funds["receipts"]] == [
        f"SEPA {k}" for k in range(count - RECENT, count)
    ]
    events, _ = await history(api, "/v1/pledges/lille-generators/history", limit=50)
    assert [e["stream_version"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["event_type"] for e in events]
    assert kinds.count(ev.PLEDGE_LINE_AMENDED) == kinds.count(ev.MONEY_RECEIVED) == count
