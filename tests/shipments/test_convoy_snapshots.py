"""A convoy's state is flat (issue 19): road summaries kept entry by entry, loaded from a
snapshot and the events after it. Whatever order road entries come in, it says what sorting
every entry by when it occurred says; the snapshot path, the full fold of the log and the
read model agree; a convoy with thousands of entries still answers a re-sent entry."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.shipments import domain, handlers, projections, views
from services.shipments import events as ev
from services.shipments.domain import codec
from shared import snapshots
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, RecordedEvent
from shared.projections import rebuild
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry, load_convoy

T0 = datetime(2022, 6, 7, 8, 0, tzinfo=UTC)
ZERO = Decimal(0)


# -- the rules as they were: every entry kept, sorted by when it occurred -------------------


def road_of(entries: list[domain.Entry]) -> list[domain.Entry]:
    return sorted(entries, key=lambda e: (e.occurred_at, e.version))


def expected(entries: list[domain.Entry]) -> dict[str, Any]:
    road = road_of(entries)
    places = [e for e in road if e.kind in ("checkpoint", "border_crossing")]
    holder = None
    for e in road:
        if e.kind == "dispatch":
            holder = e.data["custody"]
        elif e.kind == "custody_handoff":
            holder = e.data["to_party"]
    status = "in_transit"
    for e in road:
        if e.kind == "arrival":
            status = "arrived"
            break
        if e.kind == "border_crossing":
            status = {"waiting": "at_border", "cleared": "in_transit", "held": "held"}[
                e.data["outcome"]
            ]
    lost: dict[str, Decimal] = {}
    for e in entries:
        if e.kind == "incident" and e.data["kind"] in domain.LOSS_KINDS:
            for x in e.data["lines"]:
                lost[x["manifest_line_id"]] = lost.get(x["manifest_line_id"], ZERO) + Decimal(
                    x["quantity"]
                )
    incidents = [e for e in road if e.kind == "incident"]
    return {
        "last_news": road[-1] if road else None,
        "position": places[-1] if places else None,
        "custody": holder,
        "arrived_at": next((e.occurred_at for e in road if e.kind == "arrival"), None),
        "status": status,
        "lost": lost,
        "incidents": incidents[-views.INCIDENTS_SHOWN :],
        "incidents_total": len(incidents),
        "last_recorded_at": max((e.recorded_at for e in entries), default=None),
        "entries": len(entries),
    }


def observed(state: domain.Convoy) -> dict[str, Any]:
    return {
        "last_news": state.last_news,
        "position": state.position,
        "custody": state.custody,
        "arrived_at": state.arrived_at,
        "status": state.status.value,
        "lost": state.lost(),
        "incidents": list(state.incidents),
        "incidents_total": state.incident_count,
        "last_recorded_at": state.last_recorded_at,
        "entries": state.entry_count,
    }


def recorded(version: int, event_type: str, occurred_at: datetime, data: dict[str, Any]) -> Any:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type="convoy",
        stream_id="convoy-c1",
        stream_version=version,
        event_type=event_type,
        schema_version=1,
        occurred_at=occurred_at,
        recorded_at=T0 + timedelta(days=30, minutes=version),
        data={"convoy_id": "c1", **data},
        metadata=Metadata(),
    )


def random_road(rng: random.Random, n: int) -> list[tuple[str, dict[str, Any]]]:
    """n road entries of random kinds (the dispatch first), their data as evolve reads it."""
    dispatch = {"manifest_lines": 2, "weight_kg": "4", "custody": {"organisation_id": "tn"}}
    out: list[tuple[str, dict[str, Any]]] = [("dispatch", dispatch)]
    for _ in range(n):
        kind = rng.choice(
            ["checkpoint", "border_crossing", "custody_handoff", "incident", "incident", "arrival"]
        )
        data: dict[str, Any] = {}
        if kind == "checkpoint":
            data = {"place": rng.choice(["Kraków", "Lviv", "Rivne"])}
        elif kind == "border_crossing":
            data = {
                "crossing_point": "Medyka",
                "outcome": rng.choice(["waiting", "cleared", "held"]),
            }
        elif kind == "custody_handoff":
            data = {
                "from_party": {"organisation_id": "tn"},
                "to_party": {"organisation_id": rng.choice(["ukrposhta", "tn", "kharkiv"])},
            }
        elif kind == "incident":
            loss = rng.random() < 0.3
            data = {
                "kind": rng.choice(["theft", "loss", "seizure"]) if loss else "delay",
                "description": "x",
                "lines": (
                    [{"manifest_line_id": rng.choice(["m1", "m2"]), "quantity": "0.5"}]
                    if loss
                    else []
                ),
            }
        out.append((kind, data))
    return out


@pytest.mark.once
@pytest.mark.parametrize("seed", range(40))
def test_the_flat_state_says_what_the_sorted_road_says_whatever_the_order(seed: int) -> None:
    rng = random.Random(seed)
    state = domain.Convoy("c1", version=1, dispatched_at=T0)
    entries: list[domain.Entry] = []
    # few distinct instants, so that ties (broken by recording order) are common; more than
    # INCIDENTS_KEPT incidents in some runs, late ones among them
    count = rng.choice([5, 40, 300])
    minutes = rng.choice([3, 50, 10_000])
    for i, (kind, data) in enumerate(random_road(rng, count)):
        occurred_at = T0 + timedelta(minutes=rng.randrange(minutes))
        event = ev.CODEC.decode(
            recorded(
                state.version + 1,
                ev.ENTRY_EVENTS[kind],
                occurred_at,
                {"entry_id": f"e{i}", "entry_sha256": f"{i:064x}", **data},
            )
        )
        state = domain.evolve(state, event)
        entries.append(domain.entry_of(event))
        if i % 7 == 0 or i == count:
            assert observed(state) == expected(entries), f"after {i + 1} entries"
            # and what a snapshot keeps is the same state
            assert codec.decode(json.loads(json.dumps(codec.encode(state)))) == state


# -- through the API: the snapshot path, the full fold and the read model agree ---------------


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_per_second": 100_000.0, "rate_limit_burst": 100_000}


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def on_the_road(api: ShipmentsApi, convoy_id: str = "c1") -> None:
    await api.pledge_line(quantity="1000", weight_kg="100")
    await api.plan(convoy_id)
    for m in ("m1", "m2"):
        loaded = await api.load(convoy_id, manifest_line_id=m, quantity="20", weight_kg="2")
        assert loaded.status_code == 201, loaded.text
    road = await api.entries(convoy_id, entry("dispatch", at(0), "d"))
    assert road.status_code == 200, road.text


async def states(conn: asyncpg.Connection, convoy_id: str) -> tuple[Any, Any]:
    """The convoy folded from the whole log, and as the write path loads it (its snapshot
    and the events after)."""
    log = await PostgresEventStore(conn).read_stream(f"convoy-{convoy_id}")
    full = handlers.CONVOYS.fold(domain.Convoy(convoy_id), log)
    return full, await load_convoy(conn, convoy_id)


async def test_out_of_order_entries_give_the_same_view_from_the_log_and_from_the_snapshot(
    api: ShipmentsApi,
) -> None:
    await on_the_road(api)
    rng = random.Random(19)
    sent: list[dict[str, Any]] = []
    for i in range(130):  # more incidents than the view embeds, in no order
        sent.append(
            entry(
                "incident",
                at(rng.randrange(1, 3000)),
                f"i{i:03}",
                incident="delay",
                description=f"#{i}",
            )
        )
    sent += [
        entry("checkpoint", at(2500), "late-place", place="Rivne"),
        entry("checkpoint", at(100), "early-place", place="Kraków"),
        entry(
            "border_crossing",
            at(1500),
            "b1",
            crossing_point="Medyka - Shehyni",
            from_country="PL",
            to_country="UA",
            outcome="held",
        ),
        entry(
            "border_crossing",
            at(1400),
            "b0",
            crossing_point="Medyka - Shehyni",
            from_country="PL",
            to_country="UA",
            outcome="waiting",
        ),
        entry(
            "custody_handoff",
            at(2000),
            "h1",
            from_party={"organisation_id": "transports-nord"},
            to_party={"organisation_id": "ukrposhta"},
        ),
        entry(
            "incident",
            at(1800),
            "t1",
            incident="theft",
            description="two boxes",
            lines=[{"manifest_line_id": "m1", "quantity": "2"}],
        ),
        entry(
            "incident",
            at(200),
            "t0",
            incident="loss",
            description="one box",
            lines=[{"manifest_line_id": "m1", "quantity": "1"}],
        ),
    ]
    rng.shuffle(sent)
    for k in range(0, len(sent), 17):
        response = await api.entries("c1", *sent[k : k + 17])
        assert response.status_code == 200, response.text
        view = await api.convoy("c1")
        conn = await asyncpg.connect(api.url)
        try:
            full, loaded = await states(conn, "c1")
            assert loaded == full
            row = await conn.fetchval("SELECT document::text FROM convoys WHERE convoy_id = 'c1'")
            assert json.loads(row) == json.loads(json.dumps(views.document(full)))
        finally:
            await conn.close()
    assert view["status"] == "held" and view["position"]["place"] == "Rivne"
    assert view["custody"]["organisation_id"] == "ukrposhta"
    assert view["incidents_total"] == 132 and len(view["incidents"]) == views.INCIDENTS_SHOWN
    lost = {x["manifest_line_id"]: x["lost"] for x in view["manifest"]}
    assert lost == {"m1": "3", "m2": "0"}
    # an arrival recorded late, before the last news: arrived, as of when it occurred
    arrival = await api.entries("c1", entry("arrival", at(2400), "a"))
    assert arrival.status_code == 200, arrival.text
    now = await api.convoy("c1")
    assert now["status"] == "arrived" and now["arrived_at"] == at(2400)
    # the same view folded from the log from its start (as_of after everything)
    past = await api.client.get(
        "/v1/convoys/c1", params={"as_of": at(5000)}, headers=await api.as_("lille", Role.LOGISTICS)
    )
    assert past.status_code == 200, past.text
    assert {k: v for k, v in past.json().items() if k != "as_of"} == now


async def test_snapshots_dropped_or_rebuilt_change_nothing_but_speed(api: ShipmentsApi) -> None:
    await on_the_road(api)
    for k in range(3):
        response = await api.entries(
            "c1", *[entry("checkpoint", at(10 * k + i), place=f"p{k}{i}") for i in range(5)]
        )
        assert response.status_code == 200, response.text
    conn = await asyncpg.connect(api.url)
    try:

        async def read_models() -> list[Any]:
            return [
                [tuple(r.values()) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")]
                for t in ("convoys", "manifest_lines", "convoy_timeline", "snapshots")
            ]

        before = await read_models()
        assert [r[:3] for r in before[3]] == [("convoy-c1", 19, codec.FORMAT)]
        # a rebuild empties them and recreates them: the same rows, snapshots included
        await conn.execute("TRUNCATE snapshots")
        assert await rebuild(conn, projections.ALL) == 19
        assert await read_models() == before
        # dropped, the next write folds the log again, to the rows the rules give
        await conn.execute("TRUNCATE snapshots")
        late = entry("checkpoint", at(5), "late", place="Lille")
        assert (await api.entries("c1", late)).status_code == 200
        full, loaded = await states(conn, "c1")
        assert loaded == full and full.version == 20
        row = await conn.fetchval("SELECT document::text FROM convoys WHERE convoy_id = 'c1'")
        assert json.loads(row) == json.loads(json.dumps(views.document(full)))
        assert [r[:3] for r in (await read_models())[3]] == [("convoy-c1", 20, codec.FORMAT)]
        # a snapshot of another format is ignored
        await conn.execute("UPDATE snapshots SET format = 'shipments.convoy.v0', state = '{}'")
        assert await load_convoy(conn, "c1") == full
    finally:
        await conn.close()


async def test_a_long_convoy_still_answers_a_re_sent_entry_and_a_reused_id(
    api: ShipmentsApi,
) -> None:
    await on_the_road(api)
    first: dict[str, Any] = {}
    for k in range(4):  # 2,000 entries, in batches of 500
        batch = [
            entry("checkpoint", at(k * 500 + i + 1), f"cp-{k * 500 + i:04}", place="Lviv")
            for i in range(500)
        ]
        response = await api.entries("c1", *batch)
        assert response.status_code == 200, response.text
        if k == 0:
            first = response.json()["entries"][7]
    again = await api.entries("c1", entry("checkpoint", at(8), "cp-0007", place="Lviv"))
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["recorded"], body["already_recorded"]) == (0, 1)
    assert body["entries"] == [first] and body["version"] == 2004
    reused = await api.entries("c1", entry("checkpoint", at(8), "cp-0007", place="Dresden"))
    assert_problem(reused, 409, "entry-id-reused")
    # a batch of a new entry and a re-sent one, the new one named twice
    mixed = await api.entries(
        "c1",
        entry("checkpoint", at(2500), "cp-new", place="Kyiv"),
        entry("checkpoint", at(1999), "cp-1998", place="Lviv"),
        entry("checkpoint", at(2500), "cp-new", place="Kyiv"),
    )
    assert mixed.status_code == 200, mixed.text
    assert (mixed.json()["recorded"], mixed.json()["already_recorded"]) == (1, 1)
    answers = mixed.json()["entries"]
    assert answers[0] == answers[2] and answers[1]["entry_id"] == "cp-1998"
    twice = await api.entries(
        "c1",
        entry("checkpoint", at(2600), "cp-twice", place="Kyiv"),
        entry("checkpoint", at(2601), "cp-twice", place="Poltava"),
    )
    assert_problem(twice, 422, "validation-error")
    view = await api.convoy("c1")
    assert view["version"] == 2005 and view["position"]["place"] == "Kyiv"
    conn = await asyncpg.connect(api.url)
    try:
        kept = await snapshots.PostgresSnapshots(conn).get(["convoy-c1"], codec.FORMAT)
        assert kept["convoy-c1"].stream_version == 2005
        full, loaded = await states(conn, "c1")
        assert loaded == full and full.entry_count == 2002
    finally:
        await conn.close()
