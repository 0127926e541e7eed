"""The registry's projections fold any number of events at once (one, a batch of registrations,
a rebuild's page): generated histories projected one event at a time and in pages of random
sizes leave the same rows, and a rebuild leaves them too."""

from __future__ import annotations

import random
from collections import Counter

import asyncpg
import pytest

from services.registry import events as ev
from services.registry import projections
from shared.projections import rebuild
from tests.shared.projection_pages import (
    in_pages,
    log,
    one_at_a_time,
    page_sizes,
    read_models,
    twin_histories,
)

# every kind of registry event the generator writes (sealed contacts: version 2)
EVERY_KIND = {
    ev.ORGANISATION_REGISTERED,
    ev.ORGANISATION_RENAMED,
    ev.ORGANISATION_ALIAS_ADDED,
    ev.ORGANISATION_CORRECTED,
    ev.ORGANISATION_CONTACTS_CHANGED,
    ev.PARTNERSHIP_PROPOSED,
    ev.PARTNERSHIP_STATUS_CHANGED,
    ev.PARTNERSHIP_AGREEMENT_RECORDED,
}


@pytest.mark.parametrize(("seed", "in_flight"), [(1, 40), (2, 400)])
async def test_pages_of_any_size_leave_the_rows_of_one_event_at_a_time(
    pg_server: str, seed: int, in_flight: int
) -> None:
    async with twin_histories(pg_server, "registry", 3_000, seed, in_flight) as (alone, paged):
        a, b = await asyncpg.connect(alone), await asyncpg.connect(paged)
        try:
            events = await log(a)
            kinds = Counter(e.event_type for e in events)
            assert EVERY_KIND <= set(kinds), kinds
            await one_at_a_time(a, projections.ALL, events)
            expected = await read_models(a, projections.ALL)
            assert all(expected.values()), {t: len(r) for t, r in expected.items()}
            # organisations changed after their registration, partnerships after their proposal
            for table in ("organisations", "partnerships"):
                assert await a.fetchval(f"SELECT count(*) FROM {table} WHERE version > 2") > 10

            sizes = page_sizes(random.Random(seed), len(events))
            assert 1 in sizes and max(sizes) > 500
            await in_pages(b, projections.ALL, await log(b), sizes)
            assert await read_models(b, projections.ALL) == expected, f"pages of {sizes}"

            assert await rebuild(b, projections.ALL) == len(events)
            assert await read_models(b, projections.ALL) == expected

            # delivered again (a replay, a consumer's retry), in other pages: nothing changes,
            # a page of registrations only included (no row is read for it)
            again = page_sizes(random.Random(seed + 100), len(events))
            await in_pages(b, projections.ALL, await log(b), again)
            assert await read_models(b, projections.ALL) == expected, f"again in pages of {again}"
        finally:
            await a.close()
            await b.close()
