"""Tables as CSV with a row of HXL hashtags under the header (the Humanitarian Exchange
Language, so that HDX, libhxl and the OCHA tools read the columns): the generic part every
service's CSV exports share. FTS-style attributes: `#org+funder` for whoever gives,
`#org+impl` for whoever receives and implements, `+code` on identifiers, `#indicator+num+...`
for quantities, `#value+...` for money, `#date+...` for dates.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Self

MEDIA_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    hxl: str

    @classmethod
    def organisation(cls, key: str, label: str, hxl: str, *, id_key: str = "") -> list[Self]:
        """An organisation's two columns, FTS-style: its registry id (`id_key`, by default
        `<key>_id`; "<label> id"; the tag with `+code`), then its name (`key`, `label`, `hxl`)."""
        return [cls(id_key or f"{key}_id", f"{label} id", f"{hxl}+code"), cls(key, label, hxl)]


# A text cell a spreadsheet would read as a formula (OWASP "CSV injection"): one beginning with
# = + - @, a tab or a carriage return. It is written with a single quote before it, so that the
# spreadsheet shows the text; a plain number ("-20000.00", "+3", "-1.5E+3") stays as it is.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cell(value: Any) -> str:
    """None is an empty cell; a list is its items joined with "; "; numbers (int, float,
    Decimal) as they are; text a spreadsheet would take for a formula behind a single quote
    (FORMULA_START)."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    text = _text(value)
    if text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def to_csv(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> str:
    """The header row, the HXL hashtag row, then one row per mapping (CRLF, RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.label for c in columns])
    writer.writerow([c.hxl for c in columns])
    for row in rows:
        writer.writerow([cell(row.get(c.key)) for c in columns])
    return out.getvalue()
