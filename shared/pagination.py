"""Opaque cursors for keyset pagination: the sort key of the last row, base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.domain_checks import invalid
from shared.errors import ValidationFailed

MAX_LIMIT = 200
T = TypeVar("T")
# what a sort key is made of: text, or an instant (written as ISO 8601 with its offset)
Part = type[str] | type[datetime]


def encode(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode(cursor: str | None, *, parts: Sequence[Part]) -> list[Any] | None:
    """The sort key inside a cursor, each part as the type given (an instant in UTC).

    Raises ValidationFailed (422, naming the `cursor` query parameter) on anything encode()
    could not have made for this key: not base64 or JSON, another shape, a part of another
    type, text PostgreSQL cannot take (NUL, unpaired surrogates), an instant without an offset
    or one that leaves the years 1 to 9999 in UTC."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise not_given("it is not base64url JSON") from exc
    if not isinstance(key, list) or len(key) != len(parts):
        raise not_given(f"it does not hold a sort key of {len(parts)} parts")
    return [_part(value, kind) for value, kind in zip(key, parts, strict=True)]


def _part(value: Any, kind: Part) -> str | datetime:
    if not isinstance(value, str) or "\x00" in value:
        raise not_given("a part of its sort key is not text")
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise not_given("a part of its sort key is not text") from exc
    if kind is str:
        return value
    try:
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            raise ValueError("no offset")
        return instant.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise not_given("a part of its sort key is not an instant") from exc


def not_given(why: str) -> ValidationFailed:
    """A cursor this list could not have given (malformed, or naming what the list does not
    hold): 422 naming `cursor`."""
    return refused(f"not a cursor this list gave ({why}): pass back next_cursor as given")


def refused(reason: str) -> ValidationFailed:
    """A 422 naming the `cursor` query parameter for `reason` (not_given's, or a list's own
    check of what its cursor holds)."""
    return invalid(f"cursor: {reason}", name="query.cursor", reason=reason)


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
