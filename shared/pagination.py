"""Opaque cursors for keyset pagination: the sort key of the last row, base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from shared.errors import ValidationFailed

MAX_LIMIT = 200
T = TypeVar("T")


def encode(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode(cursor: str | None, *, arity: int) -> list[Any] | None:
    """The sort key inside a cursor; raises ValidationFailed on anything not made by encode."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("the cursor is not valid: pass back next_cursor as given") from exc
    # our sort keys are text: anything else was not made by encode()
    if (
        not isinstance(key, list)
        or len(key) != arity
        or not all(isinstance(k, str) and "\x00" not in k for k in key)
    ):
        raise ValidationFailed("the cursor is not valid: pass back next_cursor as given")
    return key


def page(
    rows: Sequence[T],
    *,
    limit: int,
    key_of: Callable[[T], list[Any]],
) -> tuple[list[T], str | None]:
    """`rows` was fetched with limit + 1: the extra row tells whether another page exists."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return items, encode(key_of(items[-1])) if more and items else None
