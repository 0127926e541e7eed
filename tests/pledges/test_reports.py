"""Reports over HTTP: per need, per pledge line and totals; JSON and CSV with HXL hashtags;
filters by period, partnership and programme; conversion with the caller's rate table."""

from __future__ import annotations

import csv
import io
from typing import Any

from services.pledges import demo
from shared.auth import Role
from tests.pledges.conftest import PledgesApi, assert_problem


async def loaded(api: PledgesApi) -> PledgesApi:
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    return api


async def report(api: PledgesApi, name: str, **params: Any) -> dict[str, Any]:
    return await api.get(f"/v1/reports/{name}", **params)


def rows_by(table: dict[str, Any], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in table["rows"]}


async def test_per_need_target_pledged_committed_delivered_and_gap(api: PledgesApi) -> None:
    await loaded(api)
    needs = rows_by(await report(api, "needs", recipient="kharkiv"), "need_id")
    medicines = needs[("kharkiv-medicines-2023",)]
    assert [
        medicines[f"{k}_quantity"] for k in ("target", "pledged", "committed", "delivered", "gap")
    ] == ["13", "6.5", "6.5", "0", "6.5"]
    assert medicines["status"] == "partly_covered"
    assert needs[("kharkiv-antibiotics-2023",)]["status"] == "open"
    funding = rows_by(await report(api, "needs", recipient="lille"), "need_id")
    convoy = funding[("lille-second-convoy-funding",)]
    assert (convoy["target_amount"], convoy["gap_amount"], convoy["currency"]) == (
        10_000_000,
        10_000_000,
        "EUR",
    )


async def test_totals_per_recipient_show_the_funding_gap_per_currency(api: PledgesApi) -> None:
    await loaded(api)
    totals = rows_by(
        await report(api, "totals", by="recipient"),
        "organisation_id",
        "kind",
        "category",
        "currency",
    )
    lille = totals[("lille", "money", None, "EUR")]
    assert (lille["requested"], lille["pledged"], lille["funding_gap"]) == (
        10_000_000,
        0,
        10_000_000,
    )
    kharkiv_gbp = totals[("kharkiv", "money", None, "GBP")]
    assert (kharkiv_gbp["pledged"], kharkiv_gbp["received"], kharkiv_gbp["outstanding"]) == (
        14_000_000,
        14_000_000,
        0,
    )
    generators = totals[("kharkiv", "in_kind", "generators", None)]
    assert (
        generators["requested_quantity"],
        generators["pledged_quantity"],
        generators["gap_quantity"],
    ) == ("100", "50", "50")


async def test_totals_per_donor_have_no_requests_or_gaps(api: PledgesApi) -> None:
    await loaded(api)
    totals = rows_by(await report(api, "totals", by="donor"), "organisation_id", "category")
    chu = totals[("chu-lille", "medicines")]
    assert (
        chu["organisation"],
        chu["pledged_quantity"],
        chu["requested_quantity"],
        chu["gap_quantity"],
    ) == ("CHU de Lille", "6.5", None, None)
    assert ("lille", "generators") in totals and ("kharkiv", "generators") not in totals


async def test_filters_by_period_partnership_programme_and_donor(api: PledgesApi) -> None:
    await loaded(api)

    async def pledge_ids(**params: Any) -> set[str]:
        return {r["pledge_id"] for r in (await report(api, "pledges", **params))["rows"]}

    assert await pledge_ids(**{"from": "2022-06-01", "to": "2022-06-30"}) == {
        "lille-kharkiv-medicines-2022-06"
    }
    assert await pledge_ids(partnership="leeds-kharkiv-twinning") == {
        "leeds-together-for-ukraine-appeal"
    }
    assert await pledge_ids(donor="chu-lille") == {"chu-lille-kharkiv-medicines-2023-03"}
    assert await pledge_ids(programme="Bridges of Trust") == set()
    assert len(await pledge_ids()) == 5
    needs = await report(api, "needs", partnership="lille-kharkiv-twinning")
    assert {r["recipient_id"] for r in needs["rows"]} == {"kharkiv", "lille"}
    assert (await report(api, "needs", programme="bridges of trust"))["rows"] == []


async def test_a_period_that_ends_before_it_starts_is_refused(api: PledgesApi) -> None:
    await loaded(api)
    for name in ("pledges", "needs", "totals"):
        response = await api.client.get(
            f"/v1/reports/{name}",
            params={"from": "2030-01-01", "to": "2020-01-01"},
            headers=await api.as_("bucha", Role.MEMBER),
        )
        body = assert_problem(response, 422)
        assert body["invalid_params"][0]["name"] == "query.to", body
    june = (await report(api, "pledges", **{"from": "2022-06-01", "to": "2022-06-30"}))["rows"]
    day = june[0]["date"]  # a one-day period is a period: from = to
    same_day = await report(api, "pledges", **{"from": day, "to": day})
    assert [r["pledge_id"] for r in same_day["rows"]] == [june[0]["pledge_id"]]


async def test_csv_has_a_header_row_then_hxl_hashtags(api: PledgesApi) -> None:
    await loaded(api)
    response = await api.client.get(
        "/v1/reports/pledges", params={"format": "csv", "donor": "leeds-community-foundation"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    header, tags, *rows = list(csv.reader(io.StringIO(response.text)))
    assert {
        "#org+funder",
        "#org+impl",
        "#item+name",
        "#value+pledged",
        "#currency",
        "#date+pledged",
    } <= set(tags)
    assert len(header) == len(tags)
    [row] = [dict(zip(tags, r, strict=True)) for r in rows]
    assert (
        row["#org+funder"],
        row["#org+impl"],
        row["#value+pledged"],
        row["#currency"],
        row["#date+pledged"],
    ) == ("Leeds Community Foundation", "Kharkiv", "140000.00", "GBP", "2022-04-01")


async def test_a_report_converts_with_the_callers_rates_stating_rate_and_date(
    api: PledgesApi,
) -> None:
    await loaded(api)
    table = await report(api, "totals", convert_to="EUR", rate=["GBP:1.165:2023-02-20"])
    assert table["conversion"] == {
        "to": "EUR",
        "rates": [{"currency": "GBP", "rate": "1.165", "date": "2023-02-20"}],
    }
    gbp = rows_by(table, "organisation_id", "currency")[("kharkiv", "GBP")]
    assert (gbp["received_converted"], gbp["rate"], gbp["rate_date"]) == (
        16_310_000,
        "1.165",
        "2023-02-20",
    )
    eur = rows_by(table, "organisation_id", "currency")[("lille", "EUR")]
    assert (eur["funding_gap_converted"], eur["rate"]) == (10_000_000, "1")
    assert table["summary"]["converted"]["funding_gap"] == 10_000_000
    assert table["summary"]["converted"]["received"] == 16_310_000
    response = await api.client.get(
        "/v1/reports/totals",
        params={"convert_to": "EUR", "rate": "GBP:1.165:2023-02-20", "format": "csv"},
    )
    _header, tags, *_ = list(csv.reader(io.StringIO(response.text)))
    assert {"#currency+converted", "#meta+rate", "#date+rate", "#value+gap+converted"} <= set(tags)


async def test_a_conversion_without_a_rate_for_every_currency_is_refused(
    api: PledgesApi,
) -> None:
    await loaded(api)
    missing = await api.client.get("/v1/reports/totals", params={"convert_to": "UAH"})
    assert "no rate for EUR, GBP" in assert_problem(missing, 422)["detail"]
    for bad in ("GBP:1.165", "GBP:-1:2023-02-20", "XXX:1:2023-02-20", "GBP:one:2023-02-20"):
        response = await api.client.get(
            "/v1/reports/totals", params={"convert_to": "EUR", "rate": bad}
        )
        assert_problem(response, 422)
