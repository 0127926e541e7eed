"""The pledges reports as CSV read by libhxl (the Humanitarian Exchange Language's own library):
each parses, keeps its human header row, and carries the FTS-style tags: the donor
`#org+funder`, the recipient `#org+impl`, money `#value+committed|received|paid`, the DAC
purpose code `#sector+code`, the country `#country+code`."""

from __future__ import annotations

import csv
import io
from typing import Any

import hxl

from services.pledges import demo
from shared.auth import Role
from tests.pledges.conftest import PledgesApi

# what each report must carry, as HXL tag patterns (hashtag and attributes)
EXPECTED = {
    "needs": {
        "#org+impl+code",
        "#org+impl",
        "#country+code",
        "#sector+code",
        "#item+type",
        "#date+posted",
        "#value+required",
        "#value+pledged",
        "#value+committed",
        "#value+received",
        "#value+gap",
        "#indicator+num+delivered",
    },
    "pledges": {
        "#org+funder+code",
        "#org+funder",
        "#org+impl+code",
        "#org+impl",
        "#country+code",
        "#sector+code",
        "#date+pledged",
        "#value+pledged",
        "#value+committed",
        "#value+received",
        "#value+outstanding",
        "#currency",
        "#indicator+num+delivered",
    },
    "totals-recipient": {
        "#org+impl",
        "#org+impl+code",
        "#country+code",
        "#sector+code",
        "#value+required",
        "#value+committed",
        "#value+received",
        "#value+gap",
    },
    "totals-donor": {
        "#org+funder",
        "#org+funder+code",
        "#country+code",
        "#value+committed",
        "#value+paid",
    },
}
PARAMS: dict[str, tuple[str, dict[str, str]]] = {
    "needs": ("needs", {}),
    "pledges": ("pledges", {}),
    "totals-recipient": ("totals", {"by": "recipient"}),
    "totals-donor": ("totals", {"by": "donor"}),
}


async def loaded(api: PledgesApi) -> PledgesApi:
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    return api


async def parsed(api: PledgesApi, name: str, **extra: str) -> tuple[list[str], hxl.Dataset]:
    """The report's CSV: its header row, and the dataset libhxl reads from it."""
    report, params = PARAMS[name]
    response = await api.client.get(
        f"/v1/reports/{report}", params={**params, **extra, "format": "csv"}
    )
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    return rows[0], hxl.data(rows).cache()


def has(dataset: hxl.Dataset, pattern: str) -> bool:
    return any(hxl.model.TagPattern.parse(f"{pattern}!").match(c) for c in dataset.columns)


def rows(dataset: hxl.Dataset, **where: str) -> list[Any]:
    """The rows whose values match `where` (tag pattern with _ for +: org_funder_code)."""
    out = []
    for row in dataset:
        if all(row.get("#" + k.replace("_", "+")) == v for k, v in where.items()):
            out.append(row)
    return out


async def test_every_report_parses_with_its_header_row_and_fts_style_tags(
    api: PledgesApi,
) -> None:
    await loaded(api)
    for name, expected in EXPECTED.items():
        header, dataset = await parsed(api, name)
        assert dataset.headers == header, name  # the human header row stays above the tags
        tagspecs = {c.get_display_tag(sort_attributes=False) for c in dataset.columns}
        missing = {p for p in expected if not has(dataset, p)}
        assert not missing, (name, missing, tagspecs)
        attributes = set().union(*(c.attributes for c in dataset.columns))
        assert not {"donor", "recipient"} & attributes, name  # the old, non-FTS attributes
        assert len(list(dataset)) > 0, name


async def test_the_tags_carry_the_right_values(api: PledgesApi) -> None:
    await loaded(api)
    _, pledges = await parsed(api, "pledges")
    [leeds] = rows(pledges, org_funder_code="leeds-community-foundation")
    assert (
        leeds.get("#org+funder-code"),
        leeds.get("#org+impl-code"),
        leeds.get("#country+code"),
        leeds.get("#value+pledged"),
        leeds.get("#value+committed"),
        leeds.get("#value+received"),
        leeds.get("#currency"),
    ) == (
        "Leeds Community Foundation",
        "Kharkiv",
        "UA",
        "140000.00",
        "140000.00",
        "140000.00",
        "GBP",
    )
    generators = rows(pledges, org_impl_code="kharkiv", item_type="generators")
    assert generators and {r.get("#sector+code") for r in generators} == {"72010"}

    _, needs = await parsed(api, "needs")
    [funding] = rows(needs, meta_id="lille-second-convoy-funding")
    assert (
        funding.get("#org+impl-code"),
        funding.get("#country+code"),
        funding.get("#value+required"),
        funding.get("#value+gap"),
    ) == ("Lille", "FR", "100000.00", "100000.00")

    _, donors = await parsed(api, "totals-donor")
    [leeds_total] = rows(donors, org_funder_code="leeds-community-foundation")
    assert (leeds_total.get("#value+paid-converted"), leeds_total.get("#country+code")) == (
        "140000.00",
        "GB",
    )
    _, recipients = await parsed(api, "totals-recipient")
    [kharkiv_gbp] = rows(recipients, org_impl_code="kharkiv", currency="GBP")
    assert kharkiv_gbp.get("#value+received") == "140000.00"


async def test_converted_columns_keep_the_tag_with_a_converted_attribute(
    api: PledgesApi,
) -> None:
    await loaded(api)
    _, dataset = await parsed(api, "totals-donor", convert_to="EUR", rate="GBP:1.165:2023-02-20")
    assert has(dataset, "#value+paid+converted") and has(dataset, "#currency+converted")
    [leeds] = rows(dataset, org_funder_code="leeds-community-foundation")
    assert leeds.get("#value+paid+converted") == "163100.00"
