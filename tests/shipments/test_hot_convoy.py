"""One convoy written by many clients at once, on real PostgreSQL (issue 19, point 2).

A write without If-Match that loses the race for the convoy's next version is run again on
the state the winner left (shared/web.py), so concurrent writers all succeed; with If-Match the
caller conditioned on a version, and a stale one is refused as before.

Road entries without Idempotency-Key or If-Match go further: the requests to one convoy that
arrive together are decided in one transaction (a group commit per convoy,
handlers.record_entries_together), each answered as it would have been alone."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from services.shipments import domain, handlers, projections, views
from services.shipments.requests import EntriesIn
from shared import event_store
from shared import projections as shared_projections
from shared import repository as shared_repository
from shared.auth import Principal, Role
from shared.event_store import ConcurrencyConflict, PostgresEventStore
from shared.events import Metadata
from tests.shipments.conftest import (
    ShipmentsApi,
    assert_problem,
    entry,
    load_convoy,
)

DISPATCH = "2022-06-07T06:10:00+02:00"


async def on_the_road(api: ShipmentsApi) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    response = await api.entries("c1", entry("dispatch", DISPATCH, "d"))
    assert response.status_code == 200, response.text


def checkpoint(minute: int, entry_id: str, place: str = "Lviv") -> dict[str, Any]:
    return entry(
        "checkpoint",
        f"2022-06-08T{minute // 60:02}:{minute % 60:02}:00+02:00",
        entry_id,
        place=place,
    )


def three_requests() -> list[handlers.EntriesRequest]:
    """Three requests of one checkpoint each (b0, b1, b2) by the carrier, as a batch holds them."""
    caller = Principal("k", "transports-nord", frozenset({Role.LOGISTICS}))
    requests = []
    for i in range(3):
        body = EntriesIn.model_validate({"entries": [checkpoint(10 + i, f"b{i}")]})
        requests.append(
            handlers.EntriesRequest(
                [e.command() for e in body.entries],
                caller,
                Metadata(actor="k"),
                datetime.now(UTC),
            )
        )
    return requests


async def read_models_match_a_full_fold(api: ShipmentsApi) -> domain.Convoy:
    """The convoy's row and snapshot as a fold of its whole log gives them."""
    conn = await asyncpg.connect(api.url)
    try:
        log = await PostgresEventStore(conn).read_stream("convoy-c1")
        full = handlers.CONVOYS.fold(domain.Convoy("c1"), log)
        assert await load_convoy(conn, "c1") == full
        row = await conn.fetchrow(
            "SELECT document::text AS document, version FROM convoys WHERE convoy_id = 'c1'"
        )
        assert row["version"] == full.version == len(log)
        assert json.loads(row["document"]) == json.loads(json.dumps(views.document(full)))
        snapshot = await conn.fetchval(
            "SELECT stream_version FROM snapshots WHERE stream_id = 'convoy-c1'"
        )
        assert snapshot == full.version
        timeline = await conn.fetchval(
            "SELECT count(*) FROM convoy_timeline WHERE convoy_id = 'c1'"
        )
        assert timeline == len(log)
        return full
    finally:
        await conn.close()


def together(api: ShipmentsApi) -> tuple[int, int]:
    """(batches, requests) of road entries decided together so far."""
    batcher = api.app.state.ctx.group_commits.get("road-entries")
    return (0, 0) if batcher is None else batcher.counts


async def test_concurrent_loads_without_if_match_to_one_convoy_all_succeed(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    responses = await asyncio.gather(
        *(api.load("c1", manifest_line_id=f"m{i}", quantity="1") for i in range(8))
    )
    assert [r.status_code for r in responses] == [201] * 8, [
        r.text for r in responses if r.status_code != 201
    ]
    assert sorted(r.json()["version"] for r in responses) == list(range(2, 10))
    assert {r.headers["ETag"] for r in responses} == {f'"{v}"' for v in range(2, 10)}
    assert len(await api.events("shipments.manifest-line-loaded")) == 8
    assert (await api.convoy("c1"))["version"] == 9


async def test_with_if_match_a_lost_race_and_a_stale_version_are_refused_as_before(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    headers = {**await api.as_("lille", Role.LOGISTICS), "If-Match": '"1"'}

    async def load(i: int) -> httpx.Response:
        return await api.client.post(
            "/v1/convoys/c1/manifest",
            json={
                "pledge_id": "p1",
                "line_id": "l1",
                "manifest_line_id": f"m{i}",
                "quantity": "1",
                "vehicle": "GH-482-LK",
                "occurred_at": "2022-06-06T15:00:00+02:00",
            },
            headers=headers,
        )

    responses = await asyncio.gather(*(load(i) for i in range(6)))
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 201 and set(codes[1:]) <= {409, 412}, [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        assert_problem(refused, 409, "concurrency-conflict")
    stale = await load(9)
    assert_problem(stale, 412)
    assert len(await api.events("shipments.manifest-line-loaded")) == 1


async def test_32_single_entries_at_once_to_one_convoy_are_all_recorded_once(
    api: ShipmentsApi,
) -> None:
    await on_the_road(api)
    before = (await api.convoy("c1"))["version"]
    batches, requests = together(api)
    responses = await asyncio.gather(
        *(api.entries("c1", checkpoint(i, f"cp-{i:02}")) for i in range(32))
    )
    assert [r.status_code for r in responses] == [200] * 32, [
        r.text for r in responses if r.status_code != 200
    ]
    versions = [r.json()["version"] for r in responses]
    assert sorted(versions) == list(range(before + 1, before + 33))
    assert [r.headers["ETag"] for r in responses] == [f'"{v}"' for v in versions]
    for i, response in enumerate(responses):
        body = response.json()
        assert (body["recorded"], body["already_recorded"]) == (1, 0)
        assert [e["entry_id"] for e in body["entries"]] == [f"cp-{i:02}"]
    after = together(api)
    assert after[1] - requests == 32 and after[0] - batches < 32  # some went together
    full = await read_models_match_a_full_fold(api)
    assert full.version == before + 32
    conn = await asyncpg.connect(api.url)
    try:
        ids = await conn.fetch(
            "SELECT entry_id, count(*) AS n FROM convoy_timeline"
            " WHERE convoy_id = 'c1' AND entry_id LIKE 'cp-%' GROUP BY entry_id"
        )
    finally:
        await conn.close()
    assert sorted((r["entry_id"], r["n"]) for r in ids) == [(f"cp-{i:02}", 1) for i in range(32)]


async def test_a_batch_answers_each_request_as_it_would_have_been_answered_alone(
    api: ShipmentsApi,
) -> None:
    """A batch held behind a first one (the convoy's row locked by the test), then run: a new
    entry, an id reused with other content, the new entry sent again, a caller who may not
    write road entries, a re-sent entry recorded before the batch, and another new entry."""
    await on_the_road(api)
    earlier = checkpoint(1, "cp-early")
    assert (await api.entries("c1", earlier)).status_code == 200
    before = (await api.convoy("c1"))["version"]
    events = await api.count()
    lock = await asyncpg.connect(api.url)
    try:
        holding = lock.transaction()
        await holding.start()
        await lock.execute("SELECT 1 FROM convoys WHERE convoy_id = 'c1' FOR UPDATE")
        first = asyncio.create_task(api.entries("c1", checkpoint(2, "first")))
        await asyncio.sleep(0.3)  # its batch waits for the lock; the next ones queue behind it
        sent = [
            ("new", (checkpoint(3, "new"),), None),
            ("reused", (checkpoint(4, "new", place="Rivne"),), None),
            ("again", (checkpoint(3, "new"),), None),
            ("stranger", (checkpoint(5, "stranger"),), ("bucha", Role.LOGISTICS)),
            ("early", (earlier,), None),
            ("last", (checkpoint(6, "last"),), None),
        ]
        tasks = {}
        for name, entries, who in sent:
            await api.as_(*(who or ("transports-nord", Role.LOGISTICS)))  # its key, made first
            tasks[name] = asyncio.create_task(api.entries("c1", *entries, who=who))
            await asyncio.sleep(0.05)  # queued in this order
        await holding.rollback()
    finally:
        await lock.close()
    assert (await first).status_code == 200
    answers = {name: await task for name, task in tasks.items()}
    # the dispatch, cp-early and `first` alone, then the six at once
    assert together(api) == (4, 9)
    new = answers["new"]
    assert new.status_code == 200, new.text
    assert (new.json()["version"], new.json()["recorded"]) == (before + 2, 1)
    reused = assert_problem(answers["reused"], 409, "entry-id-reused")
    assert reused["entry_id"] == "new"
    again = answers["again"]
    assert again.status_code == 200, again.text
    assert again.json() == {**new.json(), "recorded": 0, "already_recorded": 1}
    assert again.headers["ETag"] == f'"{before + 2}"'
    assert_problem(answers["stranger"], 403)
    early = answers["early"]
    assert early.status_code == 200, early.text
    assert (early.json()["version"], early.json()["already_recorded"]) == (before + 2, 1)
    last = answers["last"]
    assert last.status_code == 200, last.text
    assert last.json()["version"] == before + 3
    assert await api.count() == events + 3  # first, new, last
    full = await read_models_match_a_full_fold(api)
    assert full.version == before + 3


async def test_a_failed_batch_reaches_each_request_as_the_error_it_would_have_got_alone(
    api: ShipmentsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database lost while the batch projects: every request of the batch gets the 503
    a request alone gets (one sent with an Idempotency-Key takes the ordinary path), and
    nothing of the batch is stored."""
    await on_the_road(api)
    events = await api.count()

    async def lost(*_: object) -> None:
        raise asyncpg.PostgresConnectionError("connection lost while projecting")

    monkeypatch.setattr(shared_projections, "project", lost)
    monkeypatch.setattr(shared_repository, "project", lost)  # the unit of work's
    headers = {
        **await api.as_("transports-nord", Role.LOGISTICS),
        "Idempotency-Key": "alone-1",
    }
    alone = await api.client.post(
        "/v1/convoys/c1/entries", json={"entries": [checkpoint(1, "alone")]}, headers=headers
    )
    assert_problem(alone, 503)
    before = together(api)
    responses = await asyncio.gather(
        *(api.entries("c1", checkpoint(2 + i, f"cp-{i}")) for i in range(8))
    )
    for response in responses:
        assert_problem(response, 503)
        assert response.json()["type"] == alone.json()["type"]
        assert response.headers["Retry-After"] == alone.headers["Retry-After"]
    assert together(api)[1] - before[1] == 8
    assert await api.count() == events
    monkeypatch.undo()
    await read_models_match_a_full_fold(api)


async def held_batch(
    api: ShipmentsApi, *sent: tuple[str, dict[str, Any]]
) -> tuple[httpx.Response, dict[str, httpx.Response]]:
    """A first request held (the convoy's row locked by the test) while `sent` (name, entry)
    queue behind it in this order: the answers of the first and of the batch that follows."""
    lock = await asyncpg.connect(api.url)
    try:
        holding = lock.transaction()
        await holding.start()
        await lock.execute("SELECT 1 FROM convoys WHERE convoy_id = 'c1' FOR UPDATE")
        first = asyncio.create_task(api.entries("c1", checkpoint(0, "held-first")))
        await asyncio.sleep(0.3)
        tasks = {}
        for name, sent_entry in sent:
            tasks[name] = asyncio.create_task(api.entries("c1", sent_entry))
            await asyncio.sleep(0.05)
        await holding.rollback()
    finally:
        await lock.close()
    return await first, {name: await task for name, task in tasks.items()}


async def test_an_append_the_database_refuses_runs_the_batch_again_in_savepoints(
    api: ShipmentsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch appends in one round trip; the database refusing one request's events (data
    it cannot read as JSON: what check_storable would let through) undoes the transaction, and
    the batch runs again with each request in a savepoint: that request alone is refused."""
    await on_the_road(api)
    real = event_store.append_arguments

    def spoiled(**append: Any) -> tuple[Any, ...]:
        arguments = real(**append)
        if any(e.data.get("entry_id") == "bad" for e in append["events"]):
            return (*arguments[:-1], ["{not json"])
        return arguments

    monkeypatch.setattr(event_store, "append_arguments", spoiled)  # the group commit's too
    events = await api.count()
    first, answers = await held_batch(
        api,
        ("good", checkpoint(1, "good")),
        ("bad", checkpoint(2, "bad")),
        ("later", checkpoint(3, "later")),
    )
    assert first.status_code == 200, first.text
    version = first.json()["version"]
    assert answers["good"].status_code == 200, answers["good"].text
    assert answers["good"].json()["version"] == version + 1
    assert_problem(answers["bad"], 422, "unstorable-event")
    assert answers["later"].status_code == 200, answers["later"].text
    assert answers["later"].json()["version"] == version + 2
    assert await api.count() == events + 3
    monkeypatch.undo()
    await read_models_match_a_full_fold(api)


async def test_a_batch_whose_convoy_moved_on_before_its_appends_fails_as_a_lost_race(
    api: ShipmentsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer commits to the convoy after the batch loaded it and before the batch
    appends: the batch raises ConcurrencyConflict and stores nothing (over HTTP its requests
    run again: shared/web.py)."""
    await on_the_road(api)
    found = handlers.ports.recorded_entries

    once: list[bool] = []

    async def meanwhile(*args: Any) -> Any:
        if not once:  # the other writer's own request looks its entries up too
            once.append(True)
            response = await api.entries("c1", checkpoint(50, "other-writer"))
            assert response.status_code == 200, response.text
        return await found(*args)

    requests = three_requests()
    events = await api.count()
    monkeypatch.setattr(handlers.ports, "recorded_entries", meanwhile)
    conn = await asyncpg.connect(api.url)
    try:
        with pytest.raises(ConcurrencyConflict):
            async with conn.transaction():
                await handlers.record_entries_together(
                    conn, "c1", requests, projections=projections.ALL
                )
    finally:
        await conn.close()
    monkeypatch.undo()
    assert await api.count() == events + 1  # the other writer's entry only
    await read_models_match_a_full_fold(api)


async def test_a_fault_of_one_request_of_a_batch_is_its_own_and_the_others_are_recorded(
    api: ShipmentsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request of a batch fails with something no rule foresaw (a bug, not a refusal): it
    gets that error alone, and the others are decided, appended and projected as alone."""
    await on_the_road(api)
    decide = domain.record_entries

    def faulty(state: domain.Convoy, entries: Any, **kwargs: Any) -> Any:
        if any(e.entry_id == "b1" for e in entries):
            raise ValueError("a fault of this request's own")
        return decide(state, entries, **kwargs)

    requests = three_requests()
    events = await api.count()
    version = (await read_models_match_a_full_fold(api)).version
    monkeypatch.setattr(domain, "record_entries", faulty)
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            outcomes = await handlers.record_entries_together(
                conn, "c1", requests, projections=projections.ALL
            )
    finally:
        await conn.close()
    monkeypatch.undo()
    assert isinstance(outcomes[1], ValueError)
    first, third = outcomes[0], outcomes[2]
    assert isinstance(first, dict) and isinstance(third, dict)
    assert (first["version"], third["version"]) == (version + 1, version + 2)
    assert await api.count() == events + 2
    full = await read_models_match_a_full_fold(api)
    assert full.version == version + 2


def handoff(minute: int, entry_id: str, to: str, person: str) -> dict[str, Any]:
    """Custody handed from the carrier to `to`'s named person."""
    return entry(
        "custody_handoff",
        f"2022-06-09T{minute // 60:02}:{minute % 60:02}:00+02:00",
        entry_id,
        from_party={"organisation_id": "transports-nord"},
        to_party={"organisation_id": to, "person": {"name": person, "role": "escort"}},
    )


async def test_a_refused_request_of_a_batch_takes_the_persons_it_sealed_with_it(
    api: ShipmentsApi,
) -> None:
    """A request whose entries name persons seals them (writes) before it is decided: in a
    batch it runs in a savepoint of its own, so its refusal (an organisation the registry
    does not know) takes its sealed person with it, and the others of the batch keep
    theirs."""
    await on_the_road(api)
    subjects = await api.count("privacy_subjects")
    events = await api.count()
    batches = together(api)[0]
    first, answers = await held_batch(
        api,
        ("escort", handoff(1, "escort", "kharkiv", "Andrii Melnyk")),
        ("unknown", handoff(2, "unknown", "nowhere", "Olena Koval")),
        ("later", checkpoint(3, "later")),
    )
    assert first.status_code == 200, first.text
    version = first.json()["version"]
    assert answers["escort"].status_code == 200, answers["escort"].text
    assert answers["escort"].json()["version"] == version + 1
    assert_problem(answers["unknown"], 422)
    assert answers["later"].status_code == 200, answers["later"].text
    assert answers["later"].json()["version"] == version + 2
    assert together(api)[0] - batches == 2  # the held first, then the three at once
    assert await api.count("privacy_subjects") == subjects + 1  # the escort's only
    assert await api.count() == events + 3
    await read_models_match_a_full_fold(api)
