"""Pledges that arrive together run in one transaction (group commit), each decided by the
MakePledge handler as it would be alone: real PostgreSQL, the real pledges app."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from services.pledges.handlers.pledging import _BatchPorts
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge


def _pledge(pledge_id: str, quantity: str, **overrides: Any) -> dict[str, Any]:
    body = generators_pledge(pledge_id=pledge_id, partnership_id=None, **overrides)
    body["lines"][0]["quantity"] = quantity
    return body


async def test_pledges_at_once_are_each_decided_as_alone_and_written_together(
    api: PledgesApi,
) -> None:
    """Thirty donors' pledges to one need at once, with a pledge id sent twice, an unknown
    recipient and a need that does not exist among them: every valid pledge is stored once with
    its line and counted on the need; the others are refused as alone and leave nothing; and the
    valid ones shared transactions (they were committed in fewer transactions than pledges)."""
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    donors = ["lille", "leeds", "fastiv", "druskininkai", "bucha"]
    bodies: list[tuple[str, dict[str, Any]]] = [
        (donors[i % len(donors)], _pledge(f"p-{i}", str(i + 1))) for i in range(26)
    ]
    bodies.append(("lille", _pledge("p-0", "500")))  # the same id as the first
    bodies.append(("lille", _pledge("p-x", "7", recipient_id="nowhere")))
    missing = _pledge("p-y", "9")
    missing["lines"][0]["need_id"] = "no-such-need"
    bodies.append(("lille", missing))
    answers = await asyncio.gather(*(api.post("/v1/pledges", b, by=by) for by, b in bodies))

    created = [r for r in answers[:26] if r.status_code == 201]
    duplicate = answers[26]
    if duplicate.status_code == 201:  # it won the race for p-0: the first one is the refused one
        created, refused = [*created, duplicate], answers[0]
    else:
        refused = duplicate
    assert len(created) == 26, [r.text for r in answers if r.status_code != 201]
    assert {r.json()["version"] for r in created} == {1}
    assert_problem(refused, 409)
    unknown = assert_problem(answers[27], 422)
    assert unknown["invalid_params"] == [{"name": "recipient_id", "reason": "unknown organisation"}]
    assert answers[28].status_code in (404, 409, 422), answers[28].text

    rows = await api.fetch(
        "SELECT stream_id, count(*) AS n FROM events WHERE stream_type = 'pledge'"
        " GROUP BY stream_id ORDER BY stream_id"
    )
    assert {r["stream_id"] for r in rows} == {f"pledge-p-{i}" for i in range(26)}
    assert {r["n"] for r in rows} == {1}
    transactions = await api.fetch(
        "SELECT count(DISTINCT tx_id) AS n FROM events WHERE stream_type = 'pledge'"
    )
    assert transactions[0]["n"] < 26  # written together, not one transaction a pledge
    lines = await api.fetch("SELECT pledge_id, quantity FROM pledge_lines ORDER BY pledge_id")
    assert len(lines) == 26
    expected = sum(
        Decimal(b["lines"][0]["quantity"])
        for r, (_, b) in zip(answers, bodies, strict=True)
        if r.status_code == 201
    )
    need = await api.get("/v1/needs/kharkiv-generators", reader="kharkiv")
    assert Decimal(str(need["coverage"]["pledged"])) == expected


async def test_a_pledge_with_a_contact_runs_alone_and_keeps_its_sealed_person(
    api: PledgesApi,
) -> None:
    """A contact is sealed (written) before its pledge is decided, so such a pledge does not
    join a batch; sent among batched ones it is stored with its contact sealed all the same."""
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    contact = {"name": "Jeanne Martin", "role": "logistics coordinator"}
    plain = [api.post("/v1/pledges", _pledge(f"q-{i}", "1"), by="lille") for i in range(6)]
    with_contact = api.post("/v1/pledges", _pledge("q-contact", "2", contact=contact), by="lille")
    answers: list[httpx.Response] = await asyncio.gather(*plain, with_contact)
    assert all(r.status_code == 201 for r in answers), [r.text for r in answers]
    stored = await api.events("pledges.pledge-made")
    made = {e["pledge_id"]: e for e in stored}
    assert set(made) == {*(f"q-{i}" for i in range(6)), "q-contact"}
    assert "sealed" in made["q-contact"]["contact"]
    assert "Jeanne" not in str(made["q-contact"])


async def test_the_batch_ports_take_a_lock_the_batch_does_not_hold_yet(api: PledgesApi) -> None:
    """A need the batch locked shared is not locked again; any other lock (another need, or
    the need alone) is taken on the batch's transaction."""
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            ports = _BatchPorts(conn, locked=frozenset({"n1"}))
            await ports.lock_need("n1", shared=True)  # held by the batch already
            await ports.lock_need("n2", shared=True)
            await ports.lock_need("n1", shared=False)
            held = await conn.fetch(
                "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                " ORDER BY mode"
            )
            assert [r["mode"] for r in held] == ["ExclusiveLock", "ShareLock"]
    finally:
        await conn.close()
