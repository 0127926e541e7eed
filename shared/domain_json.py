"""A domain state as JSON and back, for snapshots (shared/snapshots.py): frozen dataclasses of
plain values, written and read field by field as their annotations say, so that a state's
fields are declared once (on the dataclass), not again in a hand-written encoder and decoder.

What each value becomes: an instant its ISO 8601 text with its offset, a Decimal its string,
an enum member its value, a tuple a list, a mapping a dict, a dataclass an object of its
fields; str, int, float, bool and Any stay as they are. A field left out of comparison
(`field(compare=False)`) is a cache the state rebuilds when asked (shipments' decoded
payloads), never written: read back, it takes its default. How to write and read each
declared type is worked out once. `from_json(cls, to_json(state)) == state`. Pure: no
framework or driver imports.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar

__all__ = ["from_json", "to_json"]

T = TypeVar("T")
Convert = Callable[[Any], Any]


def to_json(state: Any) -> Any:
    """`state`, a dataclass, as JSON values."""
    cls: Any = type(state)  # a type is hashable (the converts are cached by type)
    return _writer(cls)(state)


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """The `cls` that `to_json` wrote as `data`; KeyError naming a field it lacks."""
    hint: Any = cls
    state: T = _reader(hint)(data)
    return state


@cache
def _writer(hint: Any) -> Convert:
    return _convert(hint, write=True)


@cache
def _reader(hint: Any) -> Convert:
    return _convert(hint, write=False)


def _as_is(value: Any) -> Any:
    return value


def _value(member: Enum) -> Any:
    return member.value


def _convert(hint: Any, *, write: bool) -> Convert:
    """How to write (or read) a value declared as `hint`."""
    each = _writer if write else _reader
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        return _optional(each(present[0])) if len(present) == 1 else _as_is
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            return _items([each(args[0])], write=write, repeat=True)
        return _items([each(a) for a in args], write=write, repeat=False)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return dict if write else _as_is
    if not isinstance(hint, type):
        return _as_is  # Any
    if dataclasses.is_dataclass(hint):
        return _object(hint, write=write)
    if hint is datetime:
        return datetime.isoformat if write else datetime.fromisoformat
    if issubclass(hint, Enum):
        return _value if write else hint
    if issubclass(hint, Decimal):
        return str if write else hint
    return _as_is


def _optional(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _items(converts: list[Convert], *, write: bool, repeat: bool) -> Convert:
    """A tuple's items, each converted (by the one convert of tuple[X, ...], or by its own):
    written as a list, read as a tuple."""
    collect: Callable[[Any], Any] = list if write else tuple
    if repeat:
        [one] = converts
        return lambda value: collect(one(v) for v in value)
    return lambda value: collect(c(v) for c, v in zip(converts, value, strict=True))


def _kept(cls: type) -> list[str]:
    """The fields a state is written with: all but caches (compare=False)."""
    return [f.name for f in dataclasses.fields(cls) if f.compare]


def _object(cls: type, *, write: bool) -> Convert:
    hints = typing.get_type_hints(cls)
    if write:
        written = [(name, _writer(hints[name])) for name in _kept(cls)]
        return lambda state: {name: c(getattr(state, name)) for name, c in written}
    read = [(name, _reader(hints[name])) for name in _kept(cls)]
    return lambda data: cls(**{name: c(data[name]) for name, c in read})
