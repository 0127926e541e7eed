"""shared/canonical.py writes the same bytes as the rfc8785 package, and refuses what it refuses."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import canonical

# every character class that matters: controls, quotes, backslash, DEL, U+2028, the BMP's
# private use area (sorts after surrogates in code points, before them in UTF-16), astral
# characters (a surrogate pair in UTF-16) and lone surrogates (no UTF-8 form)
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            ['"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "\ue000", "\uffff", "\U0001f600"]
        ),
        st.sampled_from(["\ud800", "\udfff"]),
    ),
    max_size=12,
)
_INTS = st.one_of(
    st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2),
    st.sampled_from([2**53 - 1, -(2**53) + 1, 2**53, -(2**53), 2**64]),
)
_FLOATS = st.one_of(
    st.floats(width=64),
    st.floats(min_value=1e-4, max_value=1e16),
    st.floats(min_value=-180, max_value=180).map(lambda f: round(f, 6)),  # coordinates
)
_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, _TEXT, _FLOATS)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(_TEXT, st.integers(0, 3)), inner, max_size=4),
    ),
    max_leaves=20,
)


# what rfc8785 refuses a value with: its own error, or UnicodeEncodeError for a key holding a
# lone surrogate (it sorts keys by their UTF-16 form)
REFUSALS = (rfc8785.CanonicalizationError, UnicodeEncodeError)


def _reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except REFUSALS as exc:
        return type(exc)


def _ours(value: Any) -> bytes | type[Exception]:
    try:
        return canonical.dumps(value)
    except REFUSALS as exc:
        return type(exc)


@settings(max_examples=3000, deadline=None)
@given(_VALUES)
def test_same_bytes_or_same_refusal_as_rfc8785(value: Any) -> None:
    assert _ours(value) == _reference(value)
    expected = _reference(value)
    if isinstance(expected, bytes):
        assert canonical.text(value) == expected.decode()


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, "x\n\t\u00e9"], "c": {"z": "", "é": 2}},
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        {Colour.RED: Colour.RED, "n": Size.BIG},
        ("tuple", 1),
        [[[[]]]],
        {"deep": [[[[[[[[[[1]]]]]]]]]]},
        {"lat": 49.5883, "lon": 34.5514, "tiny": 0.0001, "big": 1e15 + 0.5, "neg": -0.25},
        {"integral": 2.0, "huge": 1e16 + 2, "small": 1e-5, "exp": 1.5e-7, "zero": -0.0},
    ],
)
def test_examples_match_rfc8785(value: Any) -> None:
    assert canonical.dumps(value) == rfc8785.dumps(value)


def test_plain_values_take_the_fast_path_and_others_do_not() -> None:
    assert canonical.plain({"a": [1, "b", None, True], "c": {"d": -(2**53) + 1}})
    assert canonical.plain({"lat": 49.5883, "lon": -34.5514})  # coordinates
    assert not canonical.plain({"a": 2.0})  # integral: "2.0" to Python, "2" to RFC 8785
    assert not canonical.plain({"a": 1e-5})  # an exponent to Python, not to ECMAScript
    assert not canonical.plain({"a": 2**53})  # out of range: rfc8785 refuses it
    assert not canonical.plain({"é": 1})  # non-ASCII key: UTF-16 order
    assert not canonical.plain({1: 1})  # not a string key: rfc8785 refuses it


@pytest.mark.parametrize("value", [{1: "x"}, 2**53, float("nan"), "\ud800", {"a": object()}])
def test_refuses_what_rfc8785_refuses(value: Any) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical.dumps(value)
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical.text(value)
