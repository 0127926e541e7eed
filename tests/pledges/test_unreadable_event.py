"""A stored event this code cannot read (written by a newer release, or damaged): the record
that holds it answers 500 naming the event, never a 4xx that blames the caller; its history
still shows every event as stored; a write to it stores nothing; other records are served."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge

PLEDGE = "/v1/pledges/lille-generators"


async def test_a_record_holding_an_event_this_code_cannot_read_is_a_500_naming_it(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            [newer] = await PostgresEventStore(conn).append(
                stream_type="pledge",
                stream_id="pledge-lille-generators",
                expected_version=1,
                events=[
                    NewEvent("pledges.pledge-committed", {"pledge_id": "lille-generators"}, None, 9)
                ],
                metadata=Metadata(actor="a-newer-release"),
                now=datetime.now(UTC),
            )
    finally:
        await conn.close()
    stored = await api.count_events()

    answer = await api.client.get(PLEDGE, headers=await api.as_("lille"))
    problem = assert_problem(answer, 500)
    assert problem["type"].endswith("/undecodable-event")
    assert "pledges.pledge-committed v9" in problem["detail"]
    assert problem["event_id"] == str(newer.event_id)

    history = await api.get(f"{PLEDGE}/history", reader="audit", role=Role.AUDITOR)
    assert [(e["event_type"], e["schema_version"]) for e in history["events"]] == [
        ("pledges.pledge-made", 2),
        ("pledges.pledge-committed", 9),
    ]

    refused = await api.post(f"{PLEDGE}/withdraw", {"reason": "changed plans"}, by="lille")
    assert_problem(refused, 500)
    assert await api.count_events() == stored
    # the need the pledge answers is served as before
    assert (await api.get("/v1/needs/kharkiv-generators", reader="kharkiv"))["need_id"]
