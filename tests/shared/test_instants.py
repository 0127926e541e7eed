"""The instant and date types of shared/instants.py, on their own: what plain pydantic would
take (and why these types exist), and what they refuse."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from shared import instants
from shared.errors import ValidationFailed

PAST = TypeAdapter(instants.PastInstant)
PLAN = TypeAdapter(instants.PlanInstant)
PAST_DATE = TypeAdapter(instants.PastDate)
PLAN_DATE = TypeAdapter(instants.PlanDate)


def test_plain_pydantic_takes_year_1_and_numbers_as_instants() -> None:
    plain = TypeAdapter(AwareDatetime)
    assert plain.validate_json('"0001-01-01T00:00:00+00:00"').year == 1  # the attack
    # a number is a Unix time, in seconds or (past 2e10) in milliseconds: a guess
    assert plain.validate_json("253402300799000").year == 9999
    assert plain.validate_python("0").year == 1970
    # infinity-like words it refuses already
    for word in ["infinity", "-infinity", "now", "today", "epoch"]:
        with pytest.raises(ValidationError):
            plain.validate_python(word)


NEVER = [
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+01:00",  # 31 December of 1 BC in UTC
    "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
    "1899-12-31T23:59:59.999999Z",
    "-infinity",
    "infinity",
    "+002022-03-01T09:30:00Z",
    "2022-03-01T09:30:00",  # no offset
    0,
    1646119800,
    "1646119800",
    " 1.6e9 ",
    True,
]


@pytest.mark.parametrize("value", NEVER)
@pytest.mark.parametrize("adapter", [PAST, PLAN], ids=["past", "plan"])
def test_an_instant_outside_the_range_or_not_written_as_rfc_3339_is_refused(
    adapter: TypeAdapter[datetime], value: Any
) -> None:
    with pytest.raises(ValidationError):
        adapter.validate_json(json.dumps(value))
    if isinstance(value, str):
        with pytest.raises(ValidationError):
            adapter.validate_python(value)  # as a query parameter arrives


def test_the_edges_of_each_range() -> None:
    now = datetime.now(UTC)
    assert PAST.validate_python("1900-01-01T00:00:00Z") == datetime(1900, 1, 1, tzinfo=UTC)
    assert PAST.validate_python((now + instants.clock_skew() - timedelta(seconds=1)).isoformat())
    with pytest.raises(ValidationError, match="in the future"):
        PAST.validate_python((now + instants.clock_skew() + timedelta(minutes=1)).isoformat())
    assert PLAN.validate_python((now + timedelta(days=3650)).isoformat())
    with pytest.raises(ValidationError, match="in the future"):
        PLAN.validate_python((now + timedelta(days=3660)).isoformat())
    today = now.date()
    assert PAST_DATE.validate_python(today.isoformat()) == today
    assert PAST_DATE.validate_python((today + timedelta(days=1)).isoformat())
    with pytest.raises(ValidationError):
        PAST_DATE.validate_python((today + timedelta(days=2)).isoformat())
    assert PLAN_DATE.validate_python("1900-01-01") == date(1900, 1, 1)
    with pytest.raises(ValidationError):
        PLAN_DATE.validate_python("1899-12-31")
    with pytest.raises(ValidationError):
        PLAN_DATE.validate_python((today + timedelta(days=3660)).isoformat())


def test_the_clock_skew_is_a_setting_read_when_a_value_is_validated() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    with pytest.raises(ValidationError):
        PAST.validate_python(soon)
    try:
        instants.configure(clock_skew_seconds=3600)
        assert PAST.validate_python(soon)
    finally:
        instants.configure(clock_skew_seconds=instants.DEFAULT_CLOCK_SKEW.total_seconds())


def test_a_date_inside_a_compound_parameter_is_checked_with_the_same_range() -> None:
    instants.check_past_date(date(1900, 1, 1), field="rate")
    with pytest.raises(ValidationFailed) as refused:
        instants.check_past_date(date(1, 1, 1), field="rate")
    assert refused.value.extra["invalid_params"][0]["name"] == "rate"
