"""One contract, every event-store implementation (in memory and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared.errors import ValidationFailed
from shared.event_store import (
    ConcurrencyConflict,
    EventStore,
    PostgresEventStore,
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
