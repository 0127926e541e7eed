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

`KeyedGroupCommit` groups per key instead (one record: a convoy, a need): the writers of one
record that arrive together run as one batch, one batch of a key at a time (`run` gets the key
and the items, and decides each in turn on the state the previous ones left), batches of
different keys side by side. A key's group lives while it has work and is dropped when idle, so
memory follows the records being written, not every record ever written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

K = TypeVar("K")
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
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._run = run
        self._observe = observe  # told each batch's size
        self._on_idle = on_idle  # told when the last running batch stops and nothing waits
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

    @property
    def idle(self) -> bool:
        return self._running == 0 and not self._queue

    async def _drain(self) -> None:
        try:
            await self._drain_queue()
        finally:
            self._running -= 1
            if self._on_idle is not None and self.idle:
                self._on_idle()

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


class KeyedGroupCommit(Generic[K, T, R]):
    """A GroupCommit per key with work, one batch of a key at a time (see the module's doc)."""

    def __init__(
        self,
        run: Callable[[K, list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 64,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._observe = observe
        self.max_batch = max_batch
        self._groups: dict[K, GroupCommit[T, R]] = {}
        self.batches = 0  # of groups dropped so far; with the live ones': `counts`
        self.items = 0

    def __len__(self) -> int:
        """Keys with work (a group each)."""
        return len(self._groups)

    @property
    def counts(self) -> tuple[int, int]:
        """(batches, items) so far, over every key."""
        groups = self._groups.values()
        return (
            self.batches + sum(g.batches for g in groups),
            self.items + sum(g.items for g in groups),
        )

    async def submit(self, key: K, item: T) -> R:
        group = self._groups.get(key)
        if group is None:

            def idle() -> None:
                self._drop(key, made)

            made = group = self._groups[key] = GroupCommit(
                partial(self._run, key),
                max_batch=self.max_batch,
                max_in_flight=1,
                observe=self._observe,
                on_idle=idle,
            )
        return await group.submit(item)

    def _drop(self, key: K, group: GroupCommit[T, R]) -> None:
        if self._groups.get(key) is group:
            del self._groups[key]
            self.batches += group.batches
            self.items += group.items

    async def close(self) -> None:
        """Cancel what runs and what waits, for every key (at shutdown)."""
        groups = list(self._groups.values())
        self._groups.clear()
        for group in groups:
            await group.close()
