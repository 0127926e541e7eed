"""Convoys, a convoy's manifest, deliveries and discrepancies as CSV with HXL hashtags, read
back with libhxl: FTS-style tags (`#org+funder` donors, `#org+impl` the recipient), the same
rows and figures as the JSON, and the same access rules (another donor's figures are empty
cells, named people withheld, outsiders see no convoy)."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import hxl
import pytest

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry

ORIGIN = ("lille", Role.LOGISTICS)
CHU = ("chu-lille", Role.MEMBER)
RECIPIENT = ("kharkiv", Role.MEMBER)


@pytest.fixture
async def two_convoys(api: ShipmentsApi) -> ShipmentsApi:
    """c1 Lille -> Kharkiv delivered, with the CHU's antibiotics (one box short) and Leeds
    Charity Lunch's blankets (two stolen, one damaged); c2 Lille -> Kharkiv on the road past
    Kraków with the rest of the blankets."""
    await api.pledge_line(pledge_id="chu", donor_id="chu-lille", unit="boxes", quantity="100")
    await api.pledge_line(
        pledge_id="lcl", donor_id="leeds-charity-lunch", quantity="400", weight_kg="800"
    )
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m-chu", pledge_id="chu", quantity="100")).is_success
    assert (await api.load(manifest_line_id="m-lcl", pledge_id="lcl", quantity="300")).is_success
    road = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d1"),
        entry(
            "incident",
            "2022-06-09T20:00:00+03:00",
            "t1",
            incident="theft",
            description="blankets taken at a night stop",
            lines=[{"manifest_line_id": "m-lcl", "quantity": "2"}],
        ),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a1", place="Kharkiv"),
    )
    assert road.status_code == 200, road.text
    confirmed = await api.client.post(
        "/v1/convoys/c1/delivery",
        json={
            "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
            "lines": [
                {"manifest_line_id": "m-chu", "received": "99", "damaged": "0", "short": "1"},
                {"manifest_line_id": "m-lcl", "received": "297", "damaged": "1", "short": "0"},
            ],
            "occurred_at": "2022-06-10T12:00:00+03:00",
        },
        headers=await api.as_(*RECIPIENT),
    )
    assert confirmed.status_code == 201, confirmed.text
    await api.plan("c2", planned_departure="2022-06-20T06:00:00+02:00")
    loaded = await api.load(
        "c2",
        manifest_line_id="m2",
        pledge_id="lcl",
        quantity="100",
        occurred_at="2022-06-19T15:00:00+02:00",
    )
    assert loaded.status_code == 201, loaded.text
    road = await api.entries(
        "c2",
        entry("dispatch", "2022-06-20T06:10:00+02:00", "d2"),
        entry(
            "checkpoint",
            "2022-06-21T12:00:00+02:00",
            "k2",
            place="Kraków",
            coordinates={"lat": 50.0614, "lon": 19.9366},
        ),
    )
    assert road.status_code == 200, road.text
    return api


async def get_csv(
    api: ShipmentsApi, path: str, who: tuple[str, Role], **params: Any
) -> tuple[hxl.model.Dataset, httpx.Response]:
    response = await api.client.get(
        path, params={"format": "csv", **params}, headers=await api.as_(*who)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    header, tags = list(csv.reader(io.StringIO(response.text)))[:2]
    assert all(header) and all(t.startswith("#") for t in tags)
    dataset = hxl.data(io.BytesIO(response.content), hxl.InputOptions(allow_local=True)).cache()
    assert [c.display_tag for c in dataset.columns] == tags  # libhxl reads every tag
    assert [c.header for c in dataset.columns] == header
    return dataset, response


def rows(dataset: hxl.model.Dataset, *tags: str) -> list[tuple[str, ...]]:
    return [tuple(row.get(t) or "" for t in tags) for row in dataset]


async def get_json(api: ShipmentsApi, path: str, who: tuple[str, Role]) -> Any:
    response = await api.client.get(path, headers=await api.as_(*who))
    assert response.status_code == 200, response.text
    return response.json()


async def test_convoys_as_hxl_with_fts_style_organisations(two_convoys: ShipmentsApi) -> None:
    api = two_convoys
    dataset, response = await get_csv(api, "/v1/convoys", ORIGIN)

    tags = set(dataset.display_tags)
    assert {"#org+funder+code", "#org+funder", "#org+impl+code", "#org+impl"} <= tags
    assert {"#activity+code", "#status", "#geo+lat", "#geo+lon", "#date+dispatched"} <= tags
    assert "Link" not in response.headers
    listed = await get_json(api, "/v1/convoys", ORIGIN)
    assert rows(dataset, "#activity+code", "#status") == [
        (x["convoy_id"], x["status"]) for x in listed["items"]
    ]
    assert rows(
        dataset,
        "#activity+code",
        "#org+impl+code",
        "#org+impl-code",
        "#org+funder+code",
        "#org+funder-code",
        "#loc+name",
        "#geo+lat",
    ) == [
        ("c2", "kharkiv", "Kharkiv", "leeds-charity-lunch", "Leeds Charity Lunch", "Kraków",
         "50.0614"),
        ("c1", "kharkiv", "Kharkiv", "chu-lille; leeds-charity-lunch",
         "CHU de Lille; Leeds Charity Lunch", "", ""),
    ]  # fmt: skip
    assert rows(dataset, "#indicator+num+discrepancies") == [("0",), ("2",)]

    # a page at a time: the next page is in a Link header
    first, paged = await get_csv(api, "/v1/convoys", ORIGIN, limit=1)
    assert rows(first, "#activity+code") == [("c2",)]
    link = paged.headers["Link"]
    assert link.endswith('>; rel="next"') and "format=csv" in link
    following = await api.client.get(link[1 : link.index(">")], headers=await api.as_(*ORIGIN))
    assert following.status_code == 200, following.text
    second = hxl.data(io.BytesIO(following.content), hxl.InputOptions(allow_local=True))
    assert rows(second, "#activity+code") == [("c1",)]

    # an outsider: no convoy, the header and tags still there
    outsider, _ = await get_csv(api, "/v1/convoys", ("bucha", Role.MEMBER))
    assert rows(outsider, "#activity+code") == []
    # the CHU: only the convoy its line is on
    chu, _ = await get_csv(api, "/v1/convoys", CHU)
    assert rows(chu, "#activity+code") == [("c1",)]


FIGURES = (
    "#indicator+num+loaded",
    "#indicator+num+lost",
    "#indicator+num+received",
    "#indicator+num+damaged",
    "#indicator+num+short",
)


async def test_a_manifest_as_hxl_shows_each_caller_what_the_convoy_view_shows(
    two_convoys: ShipmentsApi,
) -> None:
    api = two_convoys
    for who, expected in (
        (
            ORIGIN,
            [
                ("m-chu", "chu-lille", "boxes", "100", "0", "99", "0", "1"),
                ("m-lcl", "leeds-charity-lunch", "pieces", "300", "2", "297", "1", "0"),
            ],
        ),
        (
            CHU,  # another donor's line: what was loaded, not what became of it
            [
                ("m-chu", "chu-lille", "boxes", "100", "0", "99", "0", "1"),
                ("m-lcl", "leeds-charity-lunch", "pieces", "300", "", "", "", ""),
            ],
        ),
    ):
        dataset, _ = await get_csv(api, "/v1/convoys/c1", who)
        assert (
            rows(dataset, "#meta+id+manifest_line", "#org+funder+code", "#item+unit", *FIGURES)
            == expected
        )
        view = await get_json(api, "/v1/convoys/c1", who)
        assert rows(dataset, "#indicator+num+lost") == [
            (line["lost"] or "",) for line in view["manifest"]
        ]
        assert set(rows(dataset, "#org+impl-code", "#activity+name")) == {
            ("Kharkiv", "Lille - Kharkiv medicines")
        }
        assert rows(dataset, "#item+code")[0][0].endswith("/id/pledge-line/chu/l1")
    outsider = await api.client.get(
        "/v1/convoys/c1", params={"format": "csv"}, headers=await api.as_("bucha", Role.MEMBER)
    )
    assert_problem(outsider, 403)


async def test_deliveries_as_hxl(two_convoys: ShipmentsApi) -> None:
    api = two_convoys
    tags = ("#activity+code", "#meta+id+manifest_line", "#contact+name", *FIGURES)
    dataset, _ = await get_csv(api, "/v1/deliveries", RECIPIENT)
    assert rows(dataset, *tags) == [
        ("c1", "m-chu", "Natalia Koval", "100", "0", "99", "0", "1"),
        ("c1", "m-lcl", "Natalia Koval", "300", "2", "297", "1", "0"),
    ]
    assert rows(dataset, "#date+delivered")[0][0].startswith("2022-06-10T09:00:00")
    listed = await get_json(api, "/v1/deliveries", RECIPIENT)
    assert [(x["convoy_id"], x["received"]) for x in listed["items"]] == [
        ("c1", "99"),
        ("c1", "297"),
    ]

    chu, _ = await get_csv(api, "/v1/deliveries", CHU)
    assert rows(chu, *tags) == [
        ("c1", "m-chu", "(withheld)", "100", "0", "99", "0", "1"),
        ("c1", "m-lcl", "(withheld)", "300", "", "", "", ""),
    ]
    outsider, _ = await get_csv(api, "/v1/deliveries", ("bucha", Role.MEMBER))
    assert rows(outsider, *tags) == []


async def test_discrepancies_as_hxl(two_convoys: ShipmentsApi) -> None:
    api = two_convoys
    tags = ("#activity+code", "#org+funder+code", "#org+funder-code", "#item+name", *FIGURES)
    item = "Medium generator 5 kVA"
    dataset, _ = await get_csv(api, "/v1/discrepancies", ORIGIN)
    assert rows(dataset, *tags) == [
        ("c1", "chu-lille", "CHU de Lille", item, "100", "0", "99", "0", "1"),
        ("c1", "leeds-charity-lunch", "Leeds Charity Lunch", item, "300", "2", "297", "1", "0"),
    ]
    listed = await get_json(api, "/v1/discrepancies", ORIGIN)
    assert len(listed["items"]) == len(rows(dataset, "#activity+code"))
    # the goods' category, as the manifest line and the deliveries' rows give it
    categories = rows(dataset, "#item+type")
    assert categories and all(c != ("",) for c in categories), categories
    assert [x["category"] for x in listed["items"]] == [c for (c,) in categories]

    chu, _ = await get_csv(api, "/v1/discrepancies", CHU)  # a donor: its own lines only
    assert rows(chu, *tags) == [
        ("c1", "chu-lille", "CHU de Lille", item, "100", "0", "99", "0", "1")
    ]
    filtered, _ = await get_csv(api, "/v1/discrepancies", ORIGIN, organisation="bucha")
    assert rows(filtered, *tags) == []


async def test_an_unknown_format_is_a_problem(two_convoys: ShipmentsApi) -> None:
    for path in ("/v1/convoys", "/v1/convoys/c1", "/v1/deliveries", "/v1/discrepancies"):
        response = await two_convoys.client.get(
            path, params={"format": "xlsx"}, headers=await two_convoys.as_(*ORIGIN)
        )
        body = assert_problem(response, 422)
        assert "format" in str(body), body
