"""A change dated before the record's previous change is refused (422 naming occurred_at,
nothing stored) on needs as on pledges: revisions, closing and cancelling a need; money
received and a donor's figure on a pledge line. An as-of read before a need was posted or a
pledge made is a 404, even when the log holds a change dated earlier (written by an older
version: the log is forever), never a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.pledges import events as ev
from services.pledges.handlers import NEEDS, PLEDGES
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge

NEED = "/v1/needs/kharkiv-generators"
PLEDGE = "/v1/pledges/lille-generators"
POSTED = "2023-03-01T00:00:00+00:00"
EARLIER = "2023-01-01T00:00:00+00:00"
BETWEEN = "2023-02-01T00:00:00+00:00"
FUNDS = {
    "line_id": "funds",
    "kind": "money",
    "item": "Second convoy",
    "category": "medicines",
    "amount": 10_000_000,
    "currency": "EUR",
}


def _refused_as_before_last_change(problem: dict[str, Any], record: str) -> None:
    assert f"is before the {record}'s previous change" in problem["detail"]
    assert problem["invalid_params"] == [{"name": "occurred_at", "reason": "before last change"}]


async def _as_of(api: PledgesApi, path: str, at: str) -> Any:
    return await api.client.get(path, params={"as_of": at}, headers=await api.as_("bucha"))


async def _append_as_an_older_version_did(
    api: PledgesApi, stream_type: str, stream_id: str, version: int, events: list[NewEvent]
) -> None:
    """Append `events` after `version` straight to the log, as an older version that did not
    check their dates let them be written."""
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            await PostgresEventStore(conn).append(
                stream_type=stream_type,
                stream_id=stream_id,
                expected_version=version,
                events=events,
                metadata=Metadata(actor="an-older-version"),
                now=datetime.now(UTC),
            )
    finally:
        await conn.close()


async def test_a_need_change_dated_before_its_posting_is_refused(api: PledgesApi) -> None:
    await api.ok("/v1/needs", {**GENERATORS_NEED, "occurred_at": POSTED}, by="kharkiv")
    stored = await api.count_events()
    revision = {"priority": "high", "reason": "r", "occurred_at": EARLIER}
    problem = assert_problem(await api.post(f"{NEED}/revisions", revision, by="kharkiv"), 422)
    _refused_as_before_last_change(problem, "need")
    for end in ("cancel", "close"):
        ending = {"reason": "r", "occurred_at": EARLIER}
        problem = assert_problem(await api.post(f"{NEED}/{end}", ending, by="kharkiv"), 422)
        _refused_as_before_last_change(problem, "need")
    assert await api.count_events() == stored
    need = await api.get(NEED, reader="kharkiv")
    assert (need["version"], need["priority"], need["status"]) == (1, "critical", "open")

    missing = assert_problem(await _as_of(api, NEED, BETWEEN), 404)
    assert "kharkiv-generators" in missing["detail"]
    # dated at its posting or after, it is taken, and the as-of read follows the dates
    later = {"priority": "high", "reason": "r", "occurred_at": "2023-03-05T00:00:00+00:00"}
    assert (await api.ok(f"{NEED}/revisions", later, by="kharkiv"))["version"] == 2
    between = {"reason": "r", "occurred_at": "2023-03-02T00:00:00+00:00"}
    _refused_as_before_last_change(
        assert_problem(await api.post(f"{NEED}/cancel", between, by="kharkiv"), 422), "need"
    )
    then = (await _as_of(api, NEED, "2023-03-03T00:00:00+00:00")).json()
    assert (then["version"], then["priority"], then["state"]) == (1, "critical", "active")
    cancelled = {"reason": "r", "occurred_at": "2023-03-05T00:00:00+00:00"}
    assert (await api.ok(f"{NEED}/cancel", cancelled, by="kharkiv"))["version"] == 3


async def test_a_need_read_as_of_before_its_posting_is_404_whatever_the_log_holds(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", {**GENERATORS_NEED, "occurred_at": POSTED}, by="kharkiv")
    revised = ev.NeedRevised(
        need_id="kharkiv-generators",
        changes={"priority": "high"},
        previous={"priority": "critical"},
        reason="r",
    )
    cancelled = ev.NeedCancelled(need_id="kharkiv-generators", reason="no longer needed")
    at = datetime.fromisoformat(EARLIER)
    await _append_as_an_older_version_did(
        api,
        ev.STREAM_NEED,
        NEEDS.stream_id("kharkiv-generators"),
        1,
        [ev.new(revised, occurred_at=at), ev.new(cancelled, occurred_at=at)],
    )
    missing = assert_problem(await _as_of(api, NEED, BETWEEN), 404)
    assert missing["detail"] == "need kharkiv-generators does not exist"
    # after the posting, the history is folded in its order, as it was written
    answer = await _as_of(api, NEED, "2023-03-02T00:00:00+00:00")
    assert answer.status_code == 200, answer.text
    need = answer.json()
    assert (need["version"], need["priority"], need["state"]) == (3, "high", "cancelled")
    assert need["target"] == {"quantity": "100", "unit": "pieces"}
    assert need["end_reason"] == "no longer needed"


async def test_money_received_or_a_figure_dated_before_the_pledges_last_change_is_refused(
    api: PledgesApi,
) -> None:
    pledge = generators_pledge(lines=[FUNDS], commit=True, occurred_at=POSTED)
    await api.ok("/v1/pledges", pledge, by="lille")
    stored = await api.count_events()
    receipt = {
        "amount": 7_500_000,
        "currency": "EUR",
        "received_on": "2023-03-01",
        "reference": "SEPA 2023-0042",
    }
    refused = await api.post(
        f"{PLEDGE}/lines/funds/receipts", {**receipt, "occurred_at": EARLIER}, by="kharkiv"
    )
    _refused_as_before_last_change(assert_problem(refused, 422), "pledge")
    figure = {"amount": 10_000_000, "currency": "EUR", "reported_on": "2023-03-01"}
    refused = await api.post(
        f"{PLEDGE}/lines/funds/donor-figures", {**figure, "occurred_at": EARLIER}, by="lille"
    )
    _refused_as_before_last_change(assert_problem(refused, 422), "pledge")
    assert await api.count_events() == stored
    funds = (await api.get(PLEDGE, reader="lille"))["lines"][0]
    assert (funds["receipts_total"], funds["donor_reported"]) == (0, None)

    # a receipt is a change of the pledge: what follows it is dated no earlier
    received = {**receipt, "occurred_at": "2023-03-10T00:00:00+00:00"}
    await api.ok(f"{PLEDGE}/lines/funds/receipts", received, by="kharkiv")
    refused = await api.post(
        f"{PLEDGE}/lines/funds/donor-figures",
        {**figure, "occurred_at": "2023-03-05T00:00:00+00:00"},
        by="lille",
    )
    _refused_as_before_last_change(assert_problem(refused, 422), "pledge")
    withdrawal = {"reason": "r", "occurred_at": "2023-03-05T00:00:00+00:00"}
    refused = await api.post(f"{PLEDGE}/withdraw", withdrawal, by="lille")
    _refused_as_before_last_change(assert_problem(refused, 422), "pledge")
    reported = {**figure, "occurred_at": "2023-03-10T00:00:00+00:00"}
    await api.ok(f"{PLEDGE}/lines/funds/donor-figures", reported, by="lille")


async def test_a_pledge_read_as_of_before_it_was_made_is_404_whatever_the_log_holds(
    api: PledgesApi,
) -> None:
    pledge = generators_pledge(lines=[FUNDS], commit=True, occurred_at=POSTED)
    made = await api.ok("/v1/pledges", pledge, by="lille")
    received = ev.MoneyReceived(
        pledge_id="lille-generators",
        line_id="funds",
        amount=2_500_000,
        currency="EUR",
        received_on=datetime.fromisoformat(EARLIER).date(),
        reference="dated early",
    )
    withdrawn = ev.PledgeWithdrawn(
        pledge_id="lille-generators", reason="dated early", previous_status="committed"
    )
    at = datetime.fromisoformat(EARLIER)
    await _append_as_an_older_version_did(
        api,
        ev.STREAM_PLEDGE,
        PLEDGES.stream_id("lille-generators"),
        made["version"],
        [ev.new(received, occurred_at=at), ev.new(withdrawn, occurred_at=at)],
    )
    missing = assert_problem(await _as_of(api, PLEDGE, BETWEEN), 404)
    assert missing["detail"] == f"pledge lille-generators did not exist at {BETWEEN}"
    answer = await _as_of(api, PLEDGE, "2023-03-02T00:00:00+00:00")
    assert answer.status_code == 200, answer.text
    after = answer.json()
    assert (after["status"], after["lines"][0]["recipient_confirmed"]) == ("withdrawn", 2_500_000)


async def test_a_commitment_dated_before_the_making_is_read_as_of_then_as_a_404(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", {**GENERATORS_NEED, "occurred_at": EARLIER}, by="kharkiv")
    made = await api.ok("/v1/pledges", generators_pledge(occurred_at=POSTED), by="lille")
    committed = ev.PledgeCommitted(
        pledge_id="lille-generators", donor_id="lille", recipient_id="kharkiv"
    )
    await _append_as_an_older_version_did(
        api,
        ev.STREAM_PLEDGE,
        PLEDGES.stream_id("lille-generators"),
        made["version"],
        [ev.new(committed, occurred_at=datetime.fromisoformat(EARLIER))],
    )
    missing = assert_problem(await _as_of(api, PLEDGE, BETWEEN), 404)
    assert missing["detail"] == f"pledge lille-generators did not exist at {BETWEEN}"
    answer = await _as_of(api, PLEDGE, "2023-03-02T00:00:00+00:00")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["made_at"]) == ("committed", POSTED)


async def test_a_line_stored_without_its_currency_or_unit_is_shown_as_it_is(
    api: PledgesApi,
) -> None:
    lines = [
        ev.Line(
            line_id="funds",
            kind="money",
            need_id=None,
            item="Second convoy",
            category="medicines",
            quantity=None,
            unit=None,
            weight_kg=None,
            value_amount=None,
            value_currency=None,
            amount=10_000_000,
            currency=None,
        ),
        ev.Line(
            line_id="goods",
            kind="in_kind",
            need_id=None,
            item="Blankets",
            category="shelter",
            quantity="10",
            unit=None,
            weight_kg=None,
            value_amount=None,
            value_currency=None,
            amount=None,
            currency=None,
        ),
    ]
    made = ev.PledgeMade(
        pledge_id="odd",
        donor_id="lille",
        recipient_id="kharkiv",
        partnership_id=None,
        description=None,
        lines=lines,
    )
    await _append_as_an_older_version_did(
        api,
        ev.STREAM_PLEDGE,
        PLEDGES.stream_id("odd"),
        0,
        [ev.new(made, occurred_at=datetime.fromisoformat(POSTED))],
    )
    for params in ({}, {"as_of": "2023-03-02T00:00:00+00:00"}):
        answer = await api.client.get(
            "/v1/pledges/odd", params=params, headers=await api.as_("lille")
        )
        assert answer.status_code == 200, answer.text
        funds, goods = answer.json()["lines"]
        assert (funds["amount"], funds["currency"], funds["formatted"]) == (10_000_000, None, None)
        assert (goods["quantity"], goods["unit"]) == ("10", None)
