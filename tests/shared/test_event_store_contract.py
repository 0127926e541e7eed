"""One contract, every event-store implementation (in memory and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import asyncpg
import pytest

from shared.errors import ValidationFailed
from shared.event_store import (
    ConcurrencyConflict,
    EventStore,
    PostgresEventStore,
    Unstorable,
)
from shared.events import Metadata, NewEvent, Selection
from shared.memory_store import InMemoryEventStore
from shared.testing import seal_everything

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
META = Metadata(actor="k1", organisation="lille", correlation_id="c-1")


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    conn = await asyncpg.connect(db_url)
    try:
        yield PostgresEventStore(conn)
    finally:
        await conn.close()


async def seal(store: EventStore) -> None:
    if isinstance(store, PostgresEventStore):
        await seal_everything(store.conn)
    else:
        await store.seal()


def signed(year: int) -> NewEvent:
    return NewEvent(
        "registry.partnership-signed", {"year": year}, occurred_at=datetime(year, 1, 1, tzinfo=UTC)
    )


async def test_appends_and_reads_a_stream_in_version_order(store: EventStore) -> None:
    await store.append(
        stream_type="partnership",
        stream_id="lille-kharkiv",
        expected_version=0,
        events=[signed(1978)],
        metadata=META,
        now=NOW,
    )
    await store.append(
        stream_type="partnership",
        stream_id="lille-kharkiv",
        expected_version=1,
        events=[signed(2022), signed(2023)],
        metadata=META,
        now=NOW,
    )
    events = await store.read_stream("lille-kharkiv")
    assert [e.stream_version for e in events] == [1, 2, 3]
    assert [e.data["year"] for e in events] == [1978, 2022, 2023]
    assert events[0].metadata == META
    assert events[0].occurred_at == datetime(1978, 1, 1, tzinfo=UTC)
    assert events[0].recorded_at == NOW
    # a page: after a version, at most `limit`
    page = await store.read_stream("lille-kharkiv", after_version=1, limit=1)
    assert [e.stream_version for e in page] == [2]
    rest = await store.read_stream("lille-kharkiv", after_version=2, limit=10)
    assert [e.data["year"] for e in rest] == [2023]
    assert await store.read_stream("lille-kharkiv", after_version=3) == []


async def test_refuses_an_append_with_a_stale_expected_version(store: EventStore) -> None:
    await store.append(
        stream_type="s",
        stream_id="a",
        expected_version=0,
        events=[signed(2000)],
        metadata=META,
        now=NOW,
    )
    with pytest.raises(ConcurrencyConflict) as caught:
        await store.append(
            stream_type="s",
            stream_id="a",
            expected_version=0,
            events=[signed(2001)],
            metadata=META,
            now=NOW,
        )
    assert caught.value.actual == 1
    assert caught.value.status == 409
    assert len(await store.read_stream("a")) == 1


async def test_refuses_an_expected_version_beyond_the_stream(store: EventStore) -> None:
    with pytest.raises(ConcurrencyConflict):
        await store.append(
            stream_type="s",
            stream_id="b",
            expected_version=3,
            events=[signed(2000)],
            metadata=META,
            now=NOW,
        )
    assert await store.read_stream("b") == []


async def test_state_as_of_an_instant_uses_occurred_at_and_known_at_uses_recorded_at(
    store: EventStore,
) -> None:
    await store.append(
        stream_type="s",
        stream_id="c",
        expected_version=0,
        events=[signed(1978), signed(2022)],
        metadata=META,
        now=NOW,
    )
    as_of_1990 = await store.read_stream("c", as_of=datetime(1990, 1, 1, tzinfo=UTC))
    assert [e.data["year"] for e in as_of_1990] == [1978]
    assert await store.read_stream("c", known_at=NOW - timedelta(seconds=1)) == []


async def test_reads_all_sealed_events_after_a_position_in_pages(store: EventStore) -> None:
    for i in range(5):
        await store.append(
            stream_type="s",
            stream_id=f"s{i}",
            expected_version=0,
            events=[signed(2000 + i)],
            metadata=META,
            now=NOW,
        )
    await seal(store)
    first = await store.read_all(after=0, limit=2)
    rest = await store.read_all(after=first[-1].position or 0, limit=10)
    assert [e.position for e in first + rest] == [1, 2, 3, 4, 5]
    assert [e.data["year"] for e in first + rest] == [2000, 2001, 2002, 2003, 2004]
    assert await store.read_all(after=0, limit=10, where=Selection(stream_type="nope")) == []
    by_org = await store.read_all(after=0, limit=10, where=Selection(organisation="lille"))
    assert len(by_org) == 5
    assert await store.read_all(after=0, limit=10, where=Selection(organisation="leeds")) == []
    correlated = await store.read_all(after=0, limit=10, where=Selection(correlation_id="c-1"))
    assert len(correlated) == 5
    window = Selection(recorded_from=NOW, recorded_to=NOW + timedelta(seconds=1))
    assert len(await store.read_all(after=0, limit=10, where=window)) == 5
    assert await store.read_all(after=0, limit=10, where=Selection(recorded_to=NOW)) == []


async def test_verifies_an_untouched_chain_as_intact(store: EventStore) -> None:
    for i in range(3):
        await store.append(
            stream_type="s",
            stream_id=f"v{i}",
            expected_version=0,
            events=[signed(2000 + i)],
            metadata=META,
            now=NOW,
        )
    await seal(store)
    verdict = await store.verify()
    assert verdict.intact
    assert verdict.head_position == 3
    assert len(verdict.head_hash) == 32 and verdict.head_hash != bytes(32)


@pytest.mark.parametrize("data", [{"n": 2**60}, {"n": [1, float("nan")]}, {"n": float("inf")}])
async def test_refuses_data_without_a_canonical_form_and_stores_nothing(
    store: EventStore, data: dict[str, object]
) -> None:
    """The chain hashes RFC 8785 text: a value it cannot represent is refused at the append,
    never left for the sealer to choke on."""
    with pytest.raises(ValidationFailed, match="canonical JSON"):
        await store.append(
            stream_type="s",
            stream_id="huge",
            expected_version=0,
            events=[NewEvent("s.happened", data)],
            metadata=META,
            now=NOW,
        )
    assert await store.read_stream("huge") == []
    await seal(store)
    assert (await store.verify()).head_position == 0


def at(moment: datetime) -> NewEvent:
    return NewEvent("s.happened", {"at": moment.isoformat()}, occurred_at=moment)


OUTSIDE_THE_LOG = {
    "year-1": datetime(1, 1, 1, tzinfo=UTC),  # asyncpg would write it as -infinity
    "just-before-1900": datetime(1899, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "year-2200": datetime(2200, 1, 1, tzinfo=UTC),
    "year-9999": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # infinity
    "1900-at-plus-one": datetime(1900, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    "naive": datetime(2022, 3, 1, 9, 30),
}


@pytest.mark.parametrize("occurred_at", OUTSIDE_THE_LOG.values(), ids=OUTSIDE_THE_LOG.keys())
async def test_refuses_an_instant_the_chain_cannot_seal_and_stores_nothing(
    store: EventStore, occurred_at: datetime
) -> None:
    with pytest.raises(Unstorable, match="occurred_at"):
        await store.append(
            stream_type="s",
            stream_id="when",
            expected_version=0,
            events=[signed(2000), at(occurred_at)],
            metadata=META,
            now=NOW,
        )
    assert await store.read_stream("when") == []
    await seal(store)
    assert (await store.verify()).head_position == 0


@pytest.mark.parametrize("now", [datetime(1, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)])
async def test_refuses_a_recording_instant_outside_the_log_s_range(
    store: EventStore, now: datetime
) -> None:
    with pytest.raises(Unstorable, match="recorded_at"):
        await store.append(
            stream_type="s",
            stream_id="when",
            expected_version=0,
            events=[signed(2000)],
            metadata=META,
            now=now,
        )
    assert await store.read_stream("when") == []


async def test_stores_seals_and_verifies_the_first_and_last_instants_of_the_log(
    store: EventStore,
) -> None:
    first = datetime(1900, 1, 1, tzinfo=UTC)
    last = datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    await store.append(
        stream_type="s",
        stream_id="edges",
        expected_version=0,
        events=[
            at(first),
            at(last),
            at(datetime(1900, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))),
        ],
        metadata=META,
        now=NOW,
    )
    await seal(store)
    assert [e.occurred_at for e in await store.read_stream("edges")] == [first, last, first]
    verdict = await store.verify()
    assert verdict.intact and verdict.head_position == 3


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


BEYOND_THE_LOG = {
    # RFC 8785 writes 1e20 as 100000000000000000000, which reads back as an integer too large
    # for a canonical form: stored, it would stop the sealer
    "float-1e20": {"n": 1e20},
    "float-1e300": {"n": -1e300},
    "just-past-2**53": {"n": 2.0**53},
    "nul-in-text": {"note": "a\x00b"},
    "nul-in-a-key": {"a\x00": 1},
    "nested-65-deep": {"n": _nested(64)},  # the 1 sits at depth 65
    "not-an-object": [1, 2],
}


@pytest.mark.parametrize("data", BEYOND_THE_LOG.values(), ids=BEYOND_THE_LOG.keys())
async def test_refuses_data_the_log_cannot_hold_and_stores_nothing(
    store: EventStore, data: object
) -> None:
    with pytest.raises(ValidationFailed, match="cannot be stored"):
        await store.append(
            stream_type="s",
            stream_id="odd",
            expected_version=0,
            events=[NewEvent("s.happened", cast(Mapping[str, Any], data))],
            metadata=META,
            now=NOW,
        )
    assert await store.read_stream("odd") == []
    await seal(store)
    assert (await store.verify()).head_position == 0


async def test_stores_seals_and_verifies_data_at_the_edges_of_the_log_s_rules(
    store: EventStore,
) -> None:
    data = {
        "largest": 2**53 - 1,
        "smallest": -(2**53 - 1),
        "float": 9007199254740991.0,
        "tiny": 5e-324,
        "deep": _nested(63),  # the 1 sits at depth 64
        "escaped": "\\u0000 is six characters here",
        "digits": "12345678901234567890",
    }
    await store.append(
        stream_type="s",
        stream_id="edges",
        expected_version=0,
        events=[NewEvent("s.happened", data)],
        metadata=META,
        now=NOW,
    )
    await seal(store)
    (stored,) = await store.read_stream("edges")
    assert stored.data == data
    verdict = await store.verify()
    assert verdict.intact and verdict.head_position == 1
