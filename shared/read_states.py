"""A record as it stood at an instant, for the `?as_of=` reads: folded from the start over the
events that occurred by then (a snapshot holds only the latest state), in a unit of work that
only reads (no projection, no metadata)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import asyncpg

from shared.events import Metadata
from shared.repository import PostgresUnitOfWork, Repository

S = TypeVar("S")


async def as_of(
    conn: asyncpg.Connection, repository: Repository[S], record_id: str, instant: datetime
) -> S:
    """The record as its log stood at `instant` (`repository.initial` if nothing by then)."""
    reading = PostgresUnitOfWork(conn, (), Metadata(), instant)
    return await repository.load(reading, record_id, as_of=instant)
