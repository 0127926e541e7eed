"""RFC 8785 (JSON Canonicalization Scheme) text, fast for the values the log holds. Pure.

Every append encodes its data and metadata canonically, and the sealer, the consumers and
`twinaid verify` canonicalise again: the `rfc8785` package does it in Python, one call per
value, which cost a registration about a tenth of its CPU. For the values events are made of
(objects with ASCII keys, strings, integers within +-(2**53 - 1), booleans, null, arrays),
the standard library's C encoder with sorted keys, no spaces and no ASCII escaping writes
exactly the same bytes:
- keys: RFC 8785 orders them by UTF-16 code units, which for ASCII keys is Python's order;
- strings: both escape `"`, `\\` and the controls below U+0020 alike (`\\b \\t \\n \\f \\r`,
  the others as `\\u00xx` in lower case) and write every other character as UTF-8;
- integers: decimal digits, inside the range where RFC 8785 has them;
- floats that are not integral, from 1e-4 to 1e16 in magnitude (coordinates): both write the
  shortest digits that read back as the same number, without an exponent.

Anything else (another float, a non-ASCII key, a key that is not a string, another type, a value
nested deeper than MAX_DEPTH, a string that is not valid Unicode) goes to `rfc8785`, which
writes it or raises CanonicalizationError as before. tests/shared/test_canonical.py compares
the two on generated values.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

CanonicalizationError = rfc8785.CanonicalizationError
MAX_INT = 2**53 - 1
FLOAT_LOW, FLOAT_HIGH = 1e-4, 1e16  # floats written alike by both (coordinates, say)
MAX_DEPTH = 64  # deeper values take the slow path (chain.MAX_DEPTH refuses them anyway)

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def plain(value: Any, depth: int = 0) -> bool:
    """Whether the standard encoder writes `value` exactly as RFC 8785 does (see above)."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_INT <= value <= MAX_INT
    if isinstance(value, float):
        # where both write the shortest digits that read back, without an exponent: Python
        # from 1e-4 to 1e16, ECMAScript from 1e-6 to 1e21; an integral float is "2.0" to
        # Python and "2" to RFC 8785
        return FLOAT_LOW <= abs(value) < FLOAT_HIGH and not value.is_integer()
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, dict):
        for key, item in value.items():
            if not (isinstance(key, str) and key.isascii() and plain(item, depth + 1)):
                return False
        return True
    if isinstance(value, list | tuple):
        return all(plain(item, depth + 1) for item in value)
    return False


def dumps(value: Any) -> bytes:
    """The RFC 8785 bytes of a JSON value; CanonicalizationError where it has none."""
    if plain(value):
        try:
            return _ENCODER.encode(value).encode()  # a lone surrogate has no UTF-8 form
        except UnicodeEncodeError:
            pass  # rfc8785 refuses it
    return rfc8785.dumps(value)


def text(value: Any) -> str:
    """`dumps` as text (what the log's columns hold)."""
    if plain(value):
        out = _ENCODER.encode(value)
        if out.isascii():
            return out
        try:
            out.encode()
            return out
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(value).decode()
