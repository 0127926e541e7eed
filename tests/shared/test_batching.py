"""Group commit (shared/batching.py): what arrives together runs together; nothing waits alone.

Pure asyncio: `run` here is a function of the test. The registry's use of it against
PostgreSQL is tested in tests/registry/test_group_commit.py.
"""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import GroupCommit


class Recorder:
    """A `run` that answers each item with its double, after `gate` opens, and records batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [2 * i for i in items]


def held(*, max_batch: int = 64, max_in_flight: int = 4) -> tuple[Recorder, GroupCommit[int, int]]:
    """A batcher whose batches wait at the recorder's gate until the test opens it."""
    run = Recorder()
    run.gate.clear()
    return run, GroupCommit(run, max_batch=max_batch, max_in_flight=max_in_flight)


async def test_a_lone_item_runs_at_once_in_a_batch_of_its_own() -> None:
    run = Recorder()
    batcher = GroupCommit(run)
    assert await asyncio.wait_for(batcher.submit(7), 1) == 14
    assert run.batches == [[7]]


async def test_items_that_arrive_while_the_slots_are_busy_run_together_in_order() -> None:
    run, batcher = held(max_in_flight=1)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert run.batches == [[1]]  # running, held at the gate
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)
    run.gate.set()
    assert await asyncio.gather(first, *rest) == [2 * i for i in range(1, 12)]
    assert run.batches == [[1], list(range(2, 12))]
    assert (batcher.batches, batcher.items) == (2, 11)


async def test_no_batch_is_larger_than_max_batch() -> None:
    run, batcher = held(max_batch=4, max_in_flight=1)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
    await asyncio.sleep(0)
    run.gate.set()
    assert await asyncio.gather(*tasks) == [2 * i for i in range(10)]
    assert [len(b) for b in run.batches] == [4, 4, 2]


async def test_up_to_max_in_flight_batches_run_at_once() -> None:
    run, batcher = held(max_in_flight=3)
    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(batcher.submit(i)))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert run.batches == [[0], [1], [2]]  # three running; 3 and 4 wait for a slot
    run.gate.set()
    assert await asyncio.gather(*tasks) == [0, 2, 4, 6, 8]
    assert sorted(i for b in run.batches for i in b) == [0, 1, 2, 3, 4]


async def test_an_error_reaches_every_item_of_its_batch_and_the_next_batch_still_runs() -> None:
    run, batcher = held(max_in_flight=1)
    failing = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    run.fail = ConnectionResetError("lost")
    run.gate.set()
    for task in failing:
        with pytest.raises(ConnectionResetError):
            await task
    run.fail = None
    assert await batcher.submit(5) == 10


async def test_a_wrong_number_of_answers_is_an_error_not_a_shifted_answer() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = GroupCommit(short, max_in_flight=1)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    for task in tasks:
        with pytest.raises(RuntimeError, match="3 items, 2 answers"):
            await task


async def test_an_item_cancelled_while_it_waits_is_left_out_of_its_batch() -> None:
    run, batcher = held(max_in_flight=1)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(batcher.submit(2))
    third = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0)
    second.cancel()
    await asyncio.sleep(0)
    run.gate.set()
    assert await first == 2 and await third == 6
    with pytest.raises(asyncio.CancelledError):
        await second
    assert run.batches == [[1], [3]]


async def test_an_item_queued_as_the_last_batch_ends_is_not_stranded() -> None:
    """A batch task that finds the queue empty stops counting itself in that same step: an
    item submitted in the same turn of the loop, right after, still starts a batch (a done
    callback, a turn later, would leave it waiting for nobody)."""
    run, batcher = held(max_in_flight=1)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the batch of [1] waits at the gate

    async def late() -> int:
        await run.gate.wait()  # woken right after the batch, in the same turn
        return await batcher.submit(2)

    second = asyncio.create_task(late())
    await asyncio.sleep(0)
    run.gate.set()
    assert await asyncio.wait_for(first, 1) == 2
    assert await asyncio.wait_for(second, 1) == 4
    assert run.batches == [[1], [2]]


async def test_close_cancels_what_waits_and_what_runs() -> None:
    _, batcher = held(max_in_flight=1)
    running = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    await batcher.close()
    for task in (running, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task


def test_limits_below_one_are_refused() -> None:
    async def run(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        GroupCommit(run, max_batch=0)
    with pytest.raises(ValueError):
        GroupCommit(run, max_in_flight=0)
