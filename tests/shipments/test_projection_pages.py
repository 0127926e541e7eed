"""The convoys' projection folds any number of events at once (one, a handler's append, a
rebuild's page): generated histories projected one event at a time and in pages of random sizes
leave the same rows (convoys, manifest lines, timeline, snapshots, privacy occurrences), and a
rebuild (which keeps convoys in memory between its pages) leaves them too."""

from __future__ import annotations

import random
from collections import Counter
from unittest.mock import patch

import asyncpg
import pytest

from services.shipments import events as ev
from services.shipments import projections
from shared.projections import rebuild
from tests.shared.projection_pages import (
    in_pages,
    log,
    one_at_a_time,
    page_sizes,
    read_models,
    twin_histories,
)


@pytest.mark.parametrize(("seed", "in_flight"), [(1, 20), (2, 400)])
async def test_pages_of_any_size_leave_the_rows_of_one_event_at_a_time(
    pg_server: str, seed: int, in_flight: int
) -> None:
    async with twin_histories(pg_server, "shipments", 3_000, seed, in_flight) as (alone, paged):
        a, b = await asyncpg.connect(alone), await asyncpg.connect(paged)
        try:
            events = await log(a)
            kinds = Counter(e.event_type for e in events)
            assert len(set(kinds) & set(ev.CODEC.event_types())) >= 11, kinds
            await one_at_a_time(a, projections.ALL, events)
            expected = await read_models(a, projections.ALL)
            assert all(expected.values()), {t: len(r) for t, r in expected.items()}
            # convoys far along their way, lines whose state changed after loading
            assert await a.fetchval("SELECT count(*) FROM convoys WHERE version > 10") > 5
            assert await a.fetchval("SELECT count(*) FROM manifest_lines WHERE state <> 'loaded'")

            sizes = page_sizes(random.Random(seed), len(events))
            assert 1 in sizes and max(sizes) > 500
            await in_pages(b, projections.ALL, await log(b), sizes)
            assert await read_models(b, projections.ALL) == expected, f"pages of {sizes}"

            # a rebuild keeps convoys in memory between pages, writing out the least recently
            # touched past HELD of them: however many it keeps, the same rows
            for held in (projections.HELD, 7, 1):
                with patch.object(projections, "HELD", held):
                    assert await rebuild(b, projections.ALL) == len(events)
                assert await read_models(b, projections.ALL) == expected, f"{held} held"
        finally:
            await a.close()
            await b.close()
