"""The range of every instant and date the system accepts, checked once, here.

- `PastInstant`, `PastDate`: what happened (`occurred_at`, `received_on`, `reported_on`, a
  signed checkpoint's `signed_at`): from 1900-01-01 to now + the clock skew (dates: to today in
  UTC + 1 day, the sender's local date may be ahead);
- `PlanInstant`, `PlanDate`: what is planned (`planned_departure`, `deadline`): from 1900-01-01
  to now + 10 years;
- `QueryInstant`, `QueryDate`: `as_of` and every from/to filter: from 1900-01-01 to now + 10
  years.

The bounds are evaluated when a value is validated, never at import. The clock skew is a
setting (`CLOCK_SKEW_SECONDS`, default 5 minutes: field devices' clocks run a little ahead), the
one allowance of every service: the request edge here, and the domains' own check of a recorded
fact's date (shared/domain_checks.py not_in_future reads clock_skew()). Out of range is a 422
naming the field. Only RFC 3339 / ISO 8601 strings are accepted: a JSON number
(a Unix time in seconds or milliseconds, as pydantic would guess) is refused, and so are
`infinity`-like words (pydantic refuses those anyway).

Below the API, the event log holds instants in [1900-01-01, 2200-01-01) UTC only (`STORE_EARLIEST`,
`STORE_LATEST`): checked by the stores at append and by a CHECK constraint in the database
(shared/migrations/shared_0001_baseline.sql), far inside what PostgreSQL, asyncpg, Python and the
chain all represent alike. (asyncpg writes Python's smallest and largest datetimes as PostgreSQL's
-infinity and infinity, and reads those back as naive datetimes the chain cannot seal.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    GetJsonSchemaHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
EARLIEST_DATE = EARLIEST.date()
PLAN_HORIZON = timedelta(days=3653)  # ten years, leap days included
DATE_SKEW = timedelta(days=1)
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
STORE_EARLIEST = EARLIEST
STORE_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _Policy:
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


_policy = _Policy()


def configure(*, clock_skew_seconds: float) -> None:
    """Set by the composition root from the settings (CLOCK_SKEW_SECONDS)."""
    _policy.clock_skew = timedelta(seconds=max(0.0, clock_skew_seconds))


def clock_skew() -> timedelta:
    return _policy.clock_skew


def now() -> datetime:
    return _policy.clock()


def past_latest() -> datetime:
    return now() + _policy.clock_skew


def plan_latest() -> datetime:
    return now() + PLAN_HORIZON


def past_latest_date() -> date:
    return (now() + DATE_SKEW).date()


def plan_latest_date() -> date:
    return (now() + PLAN_HORIZON).date()


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _refuse_numbers(value: Any) -> Any:
    # pydantic takes a number, or a string of one, as a Unix time in seconds or milliseconds
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value)
    ):
        raise PydanticCustomError(
            "instant_format",
            "write an RFC 3339 string such as 2022-03-01T09:30:00+02:00, not a number",
        )
    return value


def _iso(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _out_of_range(
    value: datetime | date, earliest: datetime | date, latest: datetime | date
) -> Any:
    try:
        late = value > latest
    except OverflowError:
        late = True
    return PydanticCustomError(
        "instant_range",
        "{value} is out of range{where}: accepted from {earliest} to {latest}",
        {
            "value": value.isoformat(),
            "where": " (in the future)" if late else "",
            "earliest": _iso(earliest),
            "latest": _iso(latest),
        },
    )


@dataclass(frozen=True, slots=True)
class _Range:
    """A validator and its documentation: `latest` is called at validation time."""

    latest: Callable[[], datetime] | Callable[[], date]
    latest_doc: str

    def __call__(self, value: Any, handler: Callable[[Any], Any]) -> Any:
        parsed = handler(value)
        earliest: datetime | date = EARLIEST if isinstance(parsed, datetime) else EARLIEST_DATE
        latest = self.latest()
        try:
            inside = earliest <= parsed <= latest
        except OverflowError:  # year 9999 at a negative offset is past year 9999 in UTC
            inside = False
        if not inside:
            raise _out_of_range(parsed, earliest, latest)
        return parsed

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        earliest = "1900-01-01T00:00:00Z" if schema.get("format") == "date-time" else "1900-01-01"
        schema["x-earliest"] = earliest
        schema["x-latest"] = self.latest_doc
        return schema


_Strings = BeforeValidator(_refuse_numbers)
_PAST = _Range(past_latest, "now + clock skew (CLOCK_SKEW_SECONDS, default 5 minutes)")
_PLAN = _Range(plan_latest, "now + 10 years")
_PAST_DATE = _Range(past_latest_date, "today (UTC) + 1 day")
_PLAN_DATE = _Range(plan_latest_date, "today + 10 years")

PastInstant = Annotated[AwareDatetime, WrapValidator(_PAST), _PAST, _Strings]
PlanInstant = Annotated[AwareDatetime, WrapValidator(_PLAN), _PLAN, _Strings]
QueryInstant = Annotated[AwareDatetime, WrapValidator(_PLAN), _PLAN, _Strings]
PastDate = Annotated[date, WrapValidator(_PAST_DATE), _PAST_DATE, _Strings]
PlanDate = Annotated[date, WrapValidator(_PLAN_DATE), _PLAN_DATE, _Strings]
QueryDate = Annotated[date, WrapValidator(_PLAN_DATE), _PLAN_DATE, _Strings]


def _past_text(value: Any, handler: Callable[[Any], Any]) -> Any:
    text = handler(value)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PydanticCustomError("instant_format", "not an RFC 3339 date-time") from exc
    if parsed.tzinfo is None:
        raise PydanticCustomError("instant_format", "the date-time has no time zone offset")
    _PAST(parsed, lambda v: v)
    return text


# An instant kept as the text it was written in (a signed field: its bytes are what was signed).
PastInstantText = Annotated[
    str,
    WrapValidator(_past_text),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "x-earliest": "1900-01-01T00:00:00Z",
            "x-latest": _PAST.latest_doc,
        }
    ),
]


def check_past_date(value: date, *, field: str) -> None:
    """The same range as PastDate for a date parsed by hand (inside a compound parameter).
    Raises ValidationFailed naming `field`."""
    # here, not at the top: shared.domain_checks imports this module (clock_skew)
    from shared.domain_checks import invalid_field

    latest = past_latest_date()
    if not EARLIEST_DATE <= value <= latest:
        where = " (in the future)" if value > latest else ""
        reason = (
            f"{value} is out of range{where}: accepted from {_iso(EARLIEST_DATE)} to {_iso(latest)}"
        )
        raise invalid_field(field, reason)


def storable(value: datetime, *, field: str) -> str | None:
    """Why the event log cannot hold `value` (see STORE_EARLIEST, STORE_LATEST), or None."""
    if value.tzinfo is None or value.utcoffset() is None:
        return f"{field} {value.isoformat()} has no time zone"
    try:
        inside = STORE_EARLIEST <= value < STORE_LATEST
    except OverflowError:
        inside = False
    if not inside:
        return (
            f"{field} {value.isoformat()} is outside the log's range"
            f" [{_iso(STORE_EARLIEST)}, {_iso(STORE_LATEST)})"
        )
    return None
