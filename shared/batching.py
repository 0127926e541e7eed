"""Group commit: writes that arrive together run as one statement, with one commit.

Under load, a service's writes of one kind wait on the same things each time: a pooled
connection, a round trip, a commit flushed to disk. `GroupCommit` lets them wait together:
`submit` queues an item and, while fewer than `max_in_flight` batches are running, starts one;
a running batch takes every item queued (up to `max_batch`) and hands them to `run` in one
call, which answers each. Nothing waits for company: an item that finds a free slot goes at
once (in the next turn of the event loop), so a lone request is not delayed, and only requests
that arrive while the database is busy with others are grouped.

`run` answers every item in order, or raises: the error reaches every item of that batch (a
statement that failed wrote nothing; a lost connection may have committed, so it is not
retried here). A caller cancelled while its item waits or runs gets CancelledError; its item
may still be written with the rest of its batch, as a single statement in flight would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 64,
        max_in_flight: int = 4,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._run = run
        self._observe = observe  # told each batch's size
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # batches running: counted by _drain itself, which stops counting in the same step
        # as it finds the queue empty (a task's done callback would come a turn later, and an
        # item queued in between would wait for nobody)
        self._running = 0
        self.batches = 0  # how many `run` calls so far
        self.items = 0  # how many items they carried

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running < self.max_in_flight:
            self._running += 1
            task = asyncio.create_task(self._drain(), name="group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            await self._drain_queue()
        finally:
            self._running -= 1

    async def _drain_queue(self) -> None:
        while self._queue:
            batch = [(i, f) for i, f in self._queue[: self.max_batch] if not f.cancelled()]
            del self._queue[: self.max_batch]
            if not batch:
                continue
            self.batches += 1
            self.items += len(batch)
            if self._observe is not None:
                self._observe(len(batch))
            try:
                results = await self._run([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(batch)} items, {len(results)} answers")
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # every item of the batch gets the same error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        """Cancel what runs and what waits (at shutdown)."""
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
