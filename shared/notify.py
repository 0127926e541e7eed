"""Wake the relay after commits, without making writers commit one at a time.

A trigger that NOTIFYs in the writing transaction would serialise every commit of the server
behind PostgreSQL's notification-queue lock (held until the commit is on disk). Instead, each
API process pokes this notifier after its write committed; the notifier sends one NOTIFY from
its own connection, coalescing pokes that arrive while one is in flight. A lost or late
notification only costs latency: the relay also polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

log = logging.getLogger("twinaid.notify")
CHANNEL = "twinaid_appended"


class Notifier:
    def __init__(self, url: str) -> None:
        self.url = url
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def poke(self) -> None:
        self._poked.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        conn: asyncpg.Connection | None = None
        while True:
            await self._poked.wait()
            self._poked.clear()
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(self.url)
                await conn.execute(f"NOTIFY {CHANNEL}")
                self.sent += 1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("could not notify (the relay polls anyway): %r", exc)
                conn = None
                await asyncio.sleep(0.5)
