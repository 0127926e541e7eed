"""The pledges API on real PostgreSQL: the flow from need to money received, correlation ids,
who sees internal notes, idempotent retries, versions, and the audit views."""

from __future__ import annotations

import asyncio

from shared.auth import Role
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge

PLEDGE = "/v1/pledges/lille-generators"


async def test_a_pledge_answering_a_need_carries_the_needs_correlation_id_to_the_end(
    api: PledgesApi,
) -> None:
    need = await api.ok(
        "/v1/needs", GENERATORS_NEED, by="kharkiv", **{"X-Correlation-ID": "kharkiv-generators"}
    )
    made = await api.ok(
        "/v1/pledges", generators_pledge(), by="lille", **{"X-Correlation-ID": "lille-request-1"}
    )
    await api.ok(f"{PLEDGE}/commit", {}, by="lille", **{"X-Correlation-ID": "lille-request-2"})
    assert need["correlation_id"] == made["correlation_id"] == "kharkiv-generators"
    events = await api.events()
    assert [e["type"] for e in events] == [
        "pledges.need-posted",
        "pledges.pledge-made",
        "pledges.pledge-committed",
        "pledges.pledge-line-updated",
    ]
    assert {e["_meta"]["correlation_id"] for e in events} == {"kharkiv-generators"}
    assert events[-1]["_meta"]["organisation"] == "lille"


async def test_coverage_follows_pledges_amendments_and_withdrawals(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")

    async def coverage() -> tuple[str, dict[str, str]]:
        need = await api.get("/v1/needs/kharkiv-generators")
        return need["status"], need["coverage"]

    assert await coverage() == (
        "open",
        {"pledged": "0", "committed": "0", "delivered": "0", "gap": "100"},
    )
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    assert await coverage() == (
        "covered",
        {"pledged": "100", "committed": "0", "delivered": "0", "gap": "0"},
    )
    await api.ok(
        f"{PLEDGE}/lines/generators/amendments",
        {"quantity": "50", "reason": "about fifty for the moment"},
        by="lille",
    )
    await api.ok(f"{PLEDGE}/commit", {}, by="lille")
    assert await coverage() == (
        "partly_covered",
        {"pledged": "50", "committed": "50", "delivered": "0", "gap": "50"},
    )
    await api.ok(f"{PLEDGE}/withdraw", {"reason": "the supplier failed"}, by="lille")
    assert (await coverage())[0] == "open"
    await api.ok("/v1/needs/kharkiv-generators/close", {"reason": "bought locally"}, by="kharkiv")
    assert (await coverage())[0] == "closed"
    again = await api.post("/v1/pledges", generators_pledge(pledge_id="late"), by="lille")
    assert "closed" in assert_problem(again, 409)["detail"]


async def test_internal_notes_and_contacts_are_shown_only_to_those_concerned(
    api: PledgesApi,
) -> None:
    contact = {"name": "Olena", "role": "logistics", "phone": "+380 57 000 0000"}
    await api.ok(
        "/v1/needs",
        {**GENERATORS_NEED, "internal_note": "store at depot 4", "contact": contact},
        by="kharkiv",
    )
    await api.ok("/v1/pledges", generators_pledge(internal_note="budget line 2023-17"), by="lille")
    for who, role, sees in [
        ("kharkiv", Role.MEMBER, True),
        ("audit", Role.AUDITOR, True),
        ("bucha", Role.MEMBER, False),
        ("lille", Role.LOGISTICS, False),
    ]:
        need = await api.get("/v1/needs/kharkiv-generators", reader=who, role=role)
        assert ("internal_note" in need) is sees, who
        shown = need.get("contact")
        if sees:
            assert shown == {
                **contact,
                "email": None,
                "subject_id": shown["subject_id"],
                "erased": False,
            }
            assert shown["subject_id"].startswith("pledges-")
        else:
            assert shown is None
        listed = await api.get("/v1/needs", reader=who, role=role)
        assert ("internal_note" in listed["items"][0]) is sees
    for who, sees in [("lille", True), ("kharkiv", True), ("bucha", False)]:
        pledge = await api.get(PLEDGE, reader=who)
        assert pledge.get("internal_note") == ("budget line 2023-17" if sees else None)


async def test_a_retried_pledge_with_the_same_idempotency_key_is_made_once(
    api: PledgesApi,
) -> None:
    body = generators_pledge(
        partnership_id=None, lines=[{**generators_pledge()["lines"][0], "need_id": None}]
    )
    body.pop("pledge_id")
    responses = await asyncio.gather(
        *(
            api.post("/v1/pledges", body, by="lille", **{"Idempotency-Key": "lille-1"})
            for _ in range(5)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["pledge_id"] for r in responses}) == 1
    assert await api.count_events() == 1


async def test_a_change_against_a_stale_version_is_refused(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    stale = await api.post(f"{PLEDGE}/commit", {}, by="lille", **{"If-Match": "7"})
    assert assert_problem(stale, 412)["current_version"] == 1
    assert (await api.post(f"{PLEDGE}/commit", {}, by="lille", **{"If-Match": "1"})).is_success


async def test_a_pledge_as_of_an_instant_shows_it_before_later_changes(api: PledgesApi) -> None:
    need = {**GENERATORS_NEED, "occurred_at": "2023-01-01T00:00:00+00:00"}
    await api.ok("/v1/needs", need, by="kharkiv")
    await api.ok(
        "/v1/pledges", generators_pledge(occurred_at="2023-01-15T00:00:00+00:00"), by="lille"
    )
    await api.ok(
        f"{PLEDGE}/lines/generators/amendments",
        {"quantity": "50", "reason": "about fifty", "occurred_at": "2023-02-01T00:00:00+00:00"},
        by="lille",
    )
    then = await api.get(PLEDGE, as_of="2023-01-20T00:00:00+00:00")
    now = await api.get(PLEDGE)
    assert (then["lines"][0]["quantity"], now["lines"][0]["quantity"]) == ("100", "50")
    assert now["lines"][0]["amendments"] == [
        {"previous": "100", "new": "50", "reason": "about fifty"}
    ]
    missing = await api.client.get(
        PLEDGE, params={"as_of": "2022-01-01T00:00:00+00:00"}, headers=await api.as_("bucha")
    )
    assert_problem(missing, 404)


async def test_a_records_history_is_for_those_concerned_and_auditors(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    history = await api.get(f"{PLEDGE}/history", reader="audit", role=Role.AUDITOR)
    assert [e["event_type"] for e in history["events"]] == ["pledges.pledge-made"]
    assert (await api.get("/v1/needs/kharkiv-generators/history", reader="kharkiv"))["events"]
    response = await api.client.get(f"{PLEDGE}/history", headers=await api.as_("bucha"))
    assert_problem(response, 403)


async def test_money_received_and_the_donors_own_figure_are_shown_side_by_side(
    api: PledgesApi,
) -> None:
    line = {
        "line_id": "funds",
        "kind": "money",
        "item": "Second convoy",
        "category": "medicines",
        "amount": 10_000_000,
        "currency": "EUR",
    }
    made = "2023-02-01T00:00:00+00:00"
    await api.ok(
        "/v1/pledges", generators_pledge(lines=[line], commit=True, occurred_at=made), by="lille"
    )
    await api.ok(
        f"{PLEDGE}/lines/funds/donor-figures",
        {"amount": 10_000_000, "currency": "EUR", "reported_on": "2023-02-20"},
        by="lille",
    )
    await api.ok(
        f"{PLEDGE}/lines/funds/receipts",
        {
            "amount": 7_500_000,
            "currency": "EUR",
            "received_on": "2023-02-22",
            "reference": "SEPA 2023-0042",
        },
        by="kharkiv",
    )
    pledge = await api.get(PLEDGE)
    funds = pledge["lines"][0]
    assert (funds["recipient_confirmed"], funds["outstanding"]) == (7_500_000, 2_500_000)
    assert funds["donor_reported"] == {
        "figure": 10_000_000,
        "reported_on": "2023-02-20",
        "difference": 2_500_000,
    }
    assert pledge["status"] == "partly_fulfilled"


async def test_lists_filter_and_page(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    for i in range(3):
        await api.ok("/v1/pledges", generators_pledge(pledge_id=f"p{i}"), by="lille")
    await api.ok("/v1/pledges/p1/commit", {}, by="lille")
    first = await api.get("/v1/pledges", donor="lille", limit=2)
    second = await api.get("/v1/pledges", donor="lille", limit=2, cursor=first["next_cursor"])
    assert [p["pledge_id"] for p in first["items"] + second["items"]] == ["p2", "p1", "p0"]
    assert second["next_cursor"] is None
    committed = await api.get("/v1/pledges", status="committed", need="kharkiv-generators")
    assert [p["pledge_id"] for p in committed["items"]] == ["p1"]
    assert (await api.get("/v1/needs", status="covered"))["items"][0]["need_id"] == (
        "kharkiv-generators"
    )


async def test_an_administrator_records_for_any_organisation_under_its_own_key(
    api: PledgesApi,
) -> None:
    await api.ok(
        "/v1/needs",
        {**GENERATORS_NEED, "recipient_id": "kharkiv"},
        by="twinaid",
        role=Role.REGISTRY_ADMIN,
    )
    [event] = await api.events()
    assert (event["recipient_id"], event["_meta"]["organisation"]) == ("kharkiv", "twinaid")


async def test_a_revised_need_keeps_its_revisions_and_recomputes_its_coverage(
    api: PledgesApi,
) -> None:
    posted = {**GENERATORS_NEED, "occurred_at": "2023-02-01T00:00:00+00:00"}
    await api.ok("/v1/needs", posted, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    assert (await api.get("/v1/needs/kharkiv-generators"))["status"] == "covered"
    await api.ok(
        "/v1/needs/kharkiv-generators/revisions",
        {
            "quantity": "140",
            "deadline": "2023-03-31",
            "serves": ["heating"],
            "reason": "two more substations hit",
        },
        by="kharkiv",
    )
    need = await api.get("/v1/needs/kharkiv-generators")
    assert (need["status"], need["target"]["quantity"], need["coverage"]["gap"]) == (
        "partly_covered",
        "140",
        "40",
    )
    assert (need["deadline"], need["serves"]) == ("2023-03-31", ["heating"])
    [revision] = need["revisions"]
    assert revision["reason"] == "two more substations hit"
    assert revision["previous"] == {
        "quantity": "100",
        "deadline": None,
        "serves": ["heating", "water", "hospitals"],
    }
    other = await api.post(
        "/v1/needs/kharkiv-generators/revisions", {"priority": "normal", "reason": "r"}, by="lille"
    )
    assert_problem(other, 403)
    unit = await api.post(
        "/v1/needs/kharkiv-generators/revisions", {"unit": "kg", "reason": "r"}, by="kharkiv"
    )
    assert_problem(unit, 422)
