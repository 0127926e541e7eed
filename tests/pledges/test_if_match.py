"""If-Match on an update: the ETag last read (`"1"`) or its bare number; a weak tag (`W/"1"`,
as a compressing proxy hands it on) never matches, since If-Match compares strongly: 412 and
nothing stored; `*` matches the record whatever its version, and a record that does not exist
is still 404."""

from __future__ import annotations

from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem

NEED = "/v1/needs/kharkiv-generators"
REVISION = {"priority": "high", "reason": "the first generators arrived"}


async def test_a_weak_etag_never_matches_and_changes_nothing(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    before = await api.count_events()
    refused = await api.post(f"{NEED}/revisions", REVISION, by="kharkiv", **{"If-Match": 'W/"1"'})
    problem = assert_problem(refused, 412)
    assert problem["current_version"] == 1 and "weak" in problem["detail"]
    assert await api.count_events() == before
    taken = await api.post(f"{NEED}/revisions", REVISION, by="kharkiv", **{"If-Match": '"1"'})
    assert taken.status_code == 200, taken.text
    assert taken.headers["ETag"] == '"2"'


async def test_a_star_matches_the_record_at_any_version(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok(f"{NEED}/revisions", REVISION, by="kharkiv")
    taken = await api.post(
        f"{NEED}/revisions", {**REVISION, "priority": "normal"}, by="kharkiv", **{"If-Match": "*"}
    )
    assert taken.status_code == 200, taken.text
    assert taken.headers["ETag"] == '"3"'
    missing = await api.post(
        "/v1/needs/no-such-need/revisions", REVISION, by="kharkiv", **{"If-Match": "*"}
    )
    assert_problem(missing, 404)


async def test_other_if_match_values_are_refused_as_invalid(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    for value in ("W/1", "**", "three", 'w/"1"'):
        refused = await api.post(f"{NEED}/revisions", REVISION, by="kharkiv", **{"If-Match": value})
        assert_problem(refused, 422)
    assert await api.count_events() == 1
