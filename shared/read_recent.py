"""How much of a record's growing lists (revisions, amendments, receipts, deliveries, status
changes, agreements) its view embeds: the latest RECENT, with how many there are beside them
(`<list>_total`); the record's history, paged, has them all. One bound for every service's
views, as their answers document it ("the latest 100")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
RECENT = 100


def recent(items: Sequence[T]) -> list[T]:
    """The latest RECENT of a record's list, in their order."""
    return list(items[-RECENT:])
