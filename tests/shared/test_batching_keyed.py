"""Group commit per record (shared/batching.py, KeyedGroupCommit): the writers of one key that
arrive together run as one batch, one batch of a key at a time, keys side by side; a key's
group is dropped when idle. Pure asyncio; the shipments road entries use it against PostgreSQL
(tests/shipments/test_hot_convoy.py)."""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import KeyedGroupCommit

pytestmark = pytest.mark.once  # pure asyncio


class Recorder:
    """A `run` that answers each item with (key, item), after the key's gate opens."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.running: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self.fail: Exception | None = None

    def gate(self, key: str) -> asyncio.Event:
        return self.gates.setdefault(key, asyncio.Event())

    async def __call__(self, key: str, items: list[int]) -> list[tuple[str, int]]:
        self.batches.append((key, list(items)))
        self.running[key] = self.running.get(key, 0) + 1
        self.most_at_once[key] = max(self.most_at_once.get(key, 0), self.running[key])
        try:
            await self.gate(key).wait()
        finally:
            self.running[key] -= 1
        if self.fail is not None:
            raise self.fail
        return [(key, i) for i in items]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_keys_writers_run_one_batch_at_a_time_and_keys_side_by_side() -> None:
    run = Recorder()
    batcher: KeyedGroupCommit[str, int, tuple[str, int]] = KeyedGroupCommit(run)
    first = asyncio.create_task(batcher.submit("a", 1))
    other = asyncio.create_task(batcher.submit("b", 9))
    await settle()
    assert run.batches == [("a", [1]), ("b", [9])]  # two keys: two batches at once
    rest = [asyncio.create_task(batcher.submit("a", i)) for i in range(2, 6)]
    await settle()
    assert run.batches == [("a", [1]), ("b", [9])]  # a's next waits for its first batch
    run.gate("a").set()
    run.gate("b").set()
    assert await asyncio.gather(first, *rest) == [("a", i) for i in range(1, 6)]
    assert await other == ("b", 9)
    assert run.batches == [("a", [1]), ("b", [9]), ("a", [2, 3, 4, 5])]
    assert run.most_at_once == {"a": 1, "b": 1}
    await settle()
    assert len(batcher) == 0  # idle keys are dropped
    assert batcher.counts == (3, 6)


async def test_a_key_used_again_after_it_was_dropped_gets_a_new_group() -> None:
    run = Recorder()
    run.gate("a").set()
    batcher: KeyedGroupCommit[str, int, tuple[str, int]] = KeyedGroupCommit(run)
    for i in range(3):
        assert await batcher.submit("a", i) == ("a", i)
        await settle()
        assert len(batcher) == 0
    assert batcher.counts == (3, 3)


async def test_an_error_reaches_the_items_of_its_key_only() -> None:
    run = Recorder()
    batcher: KeyedGroupCommit[str, int, tuple[str, int]] = KeyedGroupCommit(run)
    failing = [asyncio.create_task(batcher.submit("a", i)) for i in range(3)]
    fine = asyncio.create_task(batcher.submit("b", 7))
    await settle()
    run.fail = RuntimeError("the database went away")
    run.gate("a").set()
    for task in failing:
        with pytest.raises(RuntimeError, match="went away"):
            await task
    run.fail = None
    run.gate("b").set()
    assert await fine == ("b", 7)


async def test_a_cancelled_writer_does_not_let_a_second_batch_of_its_key_start() -> None:
    run = Recorder()
    batcher: KeyedGroupCommit[str, int, tuple[str, int]] = KeyedGroupCommit(run)
    first = asyncio.create_task(batcher.submit("a", 1))
    await settle()
    first.cancel()  # its batch still runs
    await settle()
    second = asyncio.create_task(batcher.submit("a", 2))
    await settle()
    assert run.batches == [("a", [1])] and run.most_at_once == {"a": 1}
    run.gate("a").set()
    assert await second == ("a", 2)
    assert run.most_at_once == {"a": 1}
    await settle()
    assert len(batcher) == 0


async def test_close_cancels_every_key() -> None:
    run = Recorder()
    batcher: KeyedGroupCommit[str, int, tuple[str, int]] = KeyedGroupCommit(run)
    tasks = [asyncio.create_task(batcher.submit(k, 1)) for k in "abc"]
    await settle()
    await batcher.close()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(batcher) == 0
