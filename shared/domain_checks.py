"""The checks every service's decisions share: a record that must exist, an input refused
with the field it names, the dates a recorded fact may carry, a period a query asks for, and a
number written in digits by an outside caller (a cursor's part, a header, a setting).

One place, so that the same refusal reads the same in every service (a client handles a 422
naming `occurred_at`, or a 404 for a record that does not exist, alike everywhere). Pure: no
framework or driver imports (domains import it); the clock skew a recorded fact's date is
allowed comes from shared.instants, the one setting the request edge reads too.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TypeVar

from shared import instants
from shared.errors import NotFound, ValidationFailed

__all__ = [
    "Record",
    "ascii_digits",
    "invalid",
    "invalid_field",
    "not_before_last_change",
    "not_in_future",
    "occurred",
    "ordered_range",
    "require_exists",
]


class Record:
    """Mixin of a record's state folded from its stream: it exists once an event was folded
    (`version`, the stream version of the last one, is above 0)."""

    __slots__ = ()
    version: int

    @property
    def exists(self) -> bool:
        return self.version > 0


R = TypeVar("R", bound=Record)
D = TypeVar("D", bound=date)  # a date or an instant (datetime is a date)


def require_exists(state: R, what: str) -> R:
    """`state`, or NotFound "`what` does not exist" (`what` names it: "pledge p-1")."""
    if not state.exists:
        raise NotFound(f"{what} does not exist")
    return state


def ascii_digits(text: str, *, max_digits: int) -> int | None:
    """The whole number `text` writes in 1 to `max_digits` ASCII digits 0-9, nothing else
    (no sign, space or underscore); None otherwise.

    The one reading of digits from outside input: str.isdigit() also holds for "²" or "٣"
    (int() then fails, or reads another script's digit), int() also takes " 1", "+1" or "1_0",
    and a bound on the length keeps int() cheap (and below Python's limit on digits)."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def invalid(detail: str, *, name: str, reason: str) -> ValidationFailed:
    """A 422 naming the offending field, as the edge renders request validation."""
    return ValidationFailed(detail, extra={"invalid_params": [{"name": name, "reason": reason}]})


def invalid_field(name: str, reason: str) -> ValidationFailed:
    """invalid() whose detail is the field and its reason ("`name`: `reason`"), as a refused
    query parameter or header reads."""
    return invalid(f"{name}: {reason}", name=name, reason=reason)


def not_in_future(occurred_at: datetime, now: datetime, field: str = "occurred_at") -> None:
    """A fact is recorded once it happened: ValidationFailed naming `field` if it lies after
    `now` by more than the clock skew every service allows (instants.clock_skew(), the setting
    CLOCK_SKEW_SECONDS: a field device's clock runs a little ahead), as the request edge does
    (instants.PastInstant)."""
    skew = instants.clock_skew()
    if occurred_at > now + skew:
        raise invalid(
            f"{field} {occurred_at.isoformat()} lies in the future (it is now {now.isoformat()},"
            f" and clocks may run ahead by {skew.total_seconds():g} s at most): record what"
            " already happened",
            name=field,
            reason="in the future",
        )


def occurred(at: datetime | None, now: datetime) -> datetime:
    """When a fact being recorded occurred: `at` as the caller dated it (None: now), never in
    the future (not_in_future)."""
    occurred_at = at or now
    not_in_future(occurred_at, now)
    return occurred_at


def not_before_last_change(
    occurred_at: datetime,
    last_changed_at: datetime | None,
    *,
    previous: str = "the previous change",
    now: datetime | None = None,
) -> None:
    """A change is dated no earlier than the record's `previous` one: ValidationFailed naming
    `occurred_at` otherwise (a record's changes follow each other in time). Except where the
    previous change was dated ahead of `now` (a device's clock running ahead, within the
    allowance not_in_future grants) and this one is dated now or later: the clocks disagree,
    not the order, and a write left undated (dated now) is never refused for it."""
    if last_changed_at is not None and occurred_at < last_changed_at:
        if now is not None and last_changed_at > now and occurred_at >= now:
            return
        raise invalid(
            f"occurred_at {occurred_at.isoformat()} is before {previous}"
            f" ({last_changed_at.isoformat()})",
            name="occurred_at",
            reason="before last change",
        )


def ordered_range(
    start: D | None,
    end: D | None,
    *,
    start_name: str,
    end_name: str,
    end_excluded: bool = False,
) -> None:
    """A period a query asks for (dates or instants) ends no earlier than it starts:
    ValidationFailed naming `end_name` (invalid_field) otherwise, rather than an empty answer
    to a reversed range. `end_excluded`: the period stops before `end` (a half-open range), so
    an `end` equal to `start` is an empty period, refused too. Either bound absent: no check."""
    if start is None or end is None:
        return
    if end < start:
        raise invalid_field(
            end_name, f"{end.isoformat()} lies before {start_name} {start.isoformat()}"
        )
    if end_excluded and end == start:
        raise invalid_field(
            end_name,
            f"{end.isoformat()} is {start_name}: the period stops before {end_name}, so it"
            " would be empty",
        )
