"""Pledges' own copy of the registry's partnerships, kept by the consumer in any order."""

from __future__ import annotations

from services.pledges import subscriptions
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.metrics import Metrics
from tests.conftest import settings_for
from tests.pledges.conftest import PledgesApi, generators_pledge, incoming

BASE = {"partnership_id": "bucha-bergamo", "organisations": ["bucha", "lille"], "kind": "twinning"}


async def test_a_status_change_overtaking_its_proposal_keeps_the_later_status(
    api: PledgesApi,
) -> None:
    db = Database(api.url, max_size=1)
    await db.open()
    runner = ConsumerRunner(
        service="pledges",
        settings=settings_for(api.url),
        db=db,
        metrics=Metrics("t"),
        handlers=subscriptions.HANDLERS,
    )
    try:
        signed = incoming(
            "registry",
            "registry.partnership-status-changed",
            {**BASE, "from_status": "agreed", "to_status": "signed"},
            position=9002,
        )
        proposed = incoming(
            "registry",
            "registry.partnership-proposed",
            {**BASE, "programme": "Twinning Pact", "proposed_by": "bucha"},
            position=9001,
        )
        assert await runner.apply(signed)
        assert await runner.apply(proposed)
    finally:
        await db.close()
    [row] = await api.fetch(
        "SELECT status, programme FROM partnership_directory WHERE partnership_id = $1",
        "bucha-bergamo",
    )
    assert (row["status"], row["programme"]) == ("signed", "Twinning Pact")


async def test_a_pledge_under_an_ended_or_unknown_partnership_is_refused(api: PledgesApi) -> None:
    conn_rows = await api.fetch(
        "UPDATE partnership_directory SET status = 'terminated'"
        " WHERE partnership_id = 'lille-kharkiv-twinning' RETURNING 1"
    )
    assert conn_rows
    ended = await api.post(
        "/v1/pledges",
        generators_pledge(lines=[{**generators_pledge()["lines"][0], "need_id": None}]),
        by="lille",
    )
    assert ended.status_code == 422 and "has ended" in ended.json()["detail"]
    unknown = await api.post(
        "/v1/pledges",
        generators_pledge(
            partnership_id="atlantis", lines=[{**generators_pledge()["lines"][0], "need_id": None}]
        ),
        by="lille",
    )
    assert unknown.json()["invalid_params"] == [
        {"name": "partnership_id", "reason": "unknown partnership"}
    ]
    assert await api.count_events() == 0
