"""A query parameter a route takes once, sent twice, is a 422 naming it (it used to be read
as its last value: `donor=lille&donor=leeds` listed Leeds alone); one a route takes as a list
(a report's `rate`) repeats; one no route knows is ignored, repeated or not."""

from __future__ import annotations

from tests.pledges.conftest import PledgesApi, assert_problem


async def test_a_filter_sent_twice_is_refused_naming_it(api: PledgesApi) -> None:
    headers = await api.as_("lille")
    twice = await api.client.get(
        "/v1/pledges?donor=lille&recipient=kharkiv&donor=leeds-charity-lunch", headers=headers
    )
    problem = assert_problem(twice, 422)
    assert problem["invalid_params"] == [{"name": "query.donor", "reason": "given more than once"}]
    both = await api.client.get("/v1/pledges?limit=5&limit=500&cursor=a&cursor=b", headers=headers)
    names = [p["name"] for p in assert_problem(both, 422)["invalid_params"]]
    assert names == ["query.cursor", "query.limit"]
    # HEAD reaches the same route
    assert (
        await api.client.head("/v1/needs?recipient=a&recipient=b", headers=headers)
    ).status_code == 422


async def test_once_each_a_list_parameter_repeated_or_an_unknown_one_is_answered(
    api: PledgesApi,
) -> None:
    headers = await api.as_("lille")
    once = await api.client.get("/v1/pledges?donor=lille&recipient=kharkiv", headers=headers)
    assert once.status_code == 200, once.text
    unknown = await api.client.get("/v1/pledges?x=1&x=2", headers=headers)
    assert unknown.status_code == 200, unknown.text
    rates = await api.client.get(
        "/v1/reports/pledges?convert_to=EUR&rate=GBP:1.165:2023-02-20&rate=USD:0.92:2023-02-20",
        headers=headers,
    )
    assert rates.status_code == 200, rates.text
    stated = rates.json()["conversion"]
    assert {r["currency"] for r in stated["rates"]} >= {"GBP", "USD"}, stated
