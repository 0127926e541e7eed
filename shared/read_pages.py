"""A page of a keyset-paged list, fetched the one way every service's lists fetch it: the
cursor decoded into the sort key's parts, the rows after it and one more (which tells whether
another page follows), the next cursor from the page's last row (shared/pagination.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared import pagination

# a sort key: its columns in order, each with what its part is (text, or an instant)
Key = Sequence[tuple[str, pagination.Part]]


async def keyset_page(
    conn: asyncpg.Connection,
    sql: str,
    filters: Sequence[Any],
    *,
    cursor: str | None,
    limit: int,
    key: Key,
) -> tuple[list[asyncpg.Record], str | None]:
    """A page of `sql`, ordered by `key`, and its next cursor: `sql` takes the `filters`, then
    the cursor's parts (NULL on the first page), then the page's size plus one."""
    after = pagination.decode(cursor, parts=[part for _, part in key])
    rows = await conn.fetch(sql, *filters, *(after or [None] * len(key)), limit + 1)
    return pagination.page(rows, limit=limit, key_of=lambda row: _key_of(row, key))


def _key_of(row: asyncpg.Record, key: Key) -> list[Any]:
    """A row's sort key as a cursor holds it (an instant as ISO 8601 text)."""
    return [row[c].isoformat() if part is datetime else row[c] for c, part in key]
