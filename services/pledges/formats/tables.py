"""Report tables: JSON, or CSV with a row of HXL hashtags under the header (the Humanitarian
Exchange Language, so tools such as HDX read the columns), and an optional conversion of money
columns with a rate table the caller supplies, stating every rate and its date.

In JSON, money is integer minor units and quantities decimal strings; in CSV, money is written
in the major unit ("100000.00") beside its currency.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from services.pledges import domain
from shared import hxl, instants
from shared.domain_checks import invalid
from shared.errors import ValidationFailed

ColumnKind = Literal["text", "quantity", "money", "converted"]


@dataclass(frozen=True, slots=True)
class Column(hxl.Column):
    """A report's column: an HXL-tagged one (shared/hxl.py) that knows what its cells hold."""

    kind: ColumnKind = "text"


def money_keys(columns: Iterable[Column]) -> list[str]:
    """The keys of the columns in minor units: what a conversion converts."""
    return [c.key for c in columns if c.kind == "money"]


@dataclass
class Table:
    report: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    filters: dict[str, Any]
    conversion: Conversion | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    paged: bool = False  # a page of the report: `next_cursor` names the next (None: the last)
    next_cursor: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "filters": self.filters,
            "conversion": self.conversion.as_json() if self.conversion else None,
            "columns": [{"key": c.key, "label": c.label, "hxl": c.hxl} for c in self.columns],
            "rows": self.rows,
            **({"summary": self.summary} if self.summary else {}),
            **({"next_cursor": self.next_cursor} if self.paged else {}),
        }

    def as_csv(self) -> str:
        """The table as HXL-tagged CSV (shared/hxl.py), each cell written as its column says."""
        cells = [{c.key: self._cell(c, row) for c in self.columns} for row in self.rows]
        return hxl.to_csv(self.columns, cells)

    def _cell(self, column: Column, row: dict[str, Any]) -> str:
        value = row.get(column.key)
        if value is None:
            return ""
        if column.kind == "money" and row.get("currency"):
            return domain.money.format_minor(int(value), row["currency"])
        if column.kind == "converted" and self.conversion is not None:
            return domain.money.format_minor(int(value), self.conversion.target)
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
        return str(value)


@dataclass(frozen=True)
class Conversion:
    """Converts money columns to `target` with the caller's rates (rate: target per unit)."""

    target: str
    rates: dict[str, domain.money.Rate]

    @classmethod
    def parse(cls, target: str | None, rates: list[str]) -> Conversion | None:
        """`rates` as CUR:RATE:YYYY-MM-DD (one unit of CUR is worth RATE of the target on that
        day). Raises ValidationFailed on a malformed entry, an unknown currency, a rate that
        is not a plain decimal (ASCII digits, no exponent) of at most RATE_DIGITS significant
        digits above 0 and at most MAX_RATE, or rates without a target."""
        if target is None:
            if rates:
                raise _bad("query.convert_to", "name the currency to convert to with convert_to")
            return None
        domain.money.require_currency(target, field="query.convert_to")
        parsed: dict[str, domain.money.Rate] = {}
        for text in rates:
            parts = text.split(":")
            if len(parts) != 3:
                raise _bad(
                    "query.rate",
                    f"{text!r}: write CUR:RATE:YYYY-MM-DD, e.g. GBP:1.165:2023-02-20",
                )
            code, rate_text, on_text = parts
            domain.money.require_currency(code, field="query.rate")
            if code == target:
                # the target converts to itself at 1: a rate for it would scale its own figures
                raise _bad("query.rate", f"{text!r}: {code} is the currency converted to")
            rate = _rate(text, rate_text)
            try:
                on = date.fromisoformat(on_text)
            except ValueError as exc:
                raise _bad("query.rate", f"{text!r}: the date is malformed") from exc
            instants.check_past_date(on, field="query.rate")
            if code in parsed:
                raise _bad("query.rate", f"two rates for {code}")
            parsed[code] = domain.money.Rate(currency=code, rate=rate, on=on)
        return cls(target=target, rates=parsed)

    def as_json(self) -> dict[str, Any]:
        return {
            "to": self.target,
            "rates": [
                {"currency": r.currency, "rate": _plain(r.rate), "date": r.on.isoformat()}
                for r in self.rates.values()
            ],
        }

    def apply(self, table: Table, keys: list[str]) -> None:
        """Add the converted `keys` to every row that has a currency, with the rate and date
        used. Raises ValidationFailed naming the currencies the rate table lacks."""
        missing = sorted(
            {
                r["currency"]
                for r in table.rows
                if r.get("currency")
                and r["currency"] != self.target
                and r["currency"] not in self.rates
            }
        )
        if missing:
            raise _bad("query.rate", f"the rate table has no rate for {', '.join(missing)}")
        for row in table.rows:
            currency = row.get("currency")
            rate = self.rates.get(currency) if currency else None
            row["converted_currency"] = self.target if currency else None
            row["rate"] = _plain(rate.rate) if rate else ("1" if currency else None)
            row["rate_date"] = rate.on.isoformat() if rate else None
            for key in keys:
                value = row.get(key)
                row[f"{key}_converted"] = (
                    None
                    if value is None or not currency
                    else domain.money.convert(
                        int(value),
                        currency,
                        target=self.target,
                        rate=rate.rate if rate else Decimal(1),
                        field="query.rate",
                    )
                )
        table.conversion = self
        table.columns += [
            Column("converted_currency", "Converted to", "#currency+converted"),
            Column("rate", "Rate", "#meta+rate"),
            Column("rate_date", "Rate date", "#date+rate"),
        ] + [
            Column(
                f"{key}_converted",
                f"{_label(table, key)} ({self.target})",
                f"{_hxl(table, key)}+converted",
                "converted",
            )
            for key in keys
        ]


def _label(table: Table, key: str) -> str:
    return next(c.label for c in table.columns if c.key == key)


def _hxl(table: Table, key: str) -> str:
    return next(c.hxl for c in table.columns if c.key == key)


_RATE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _rate(entry: str, text: str) -> Decimal:
    """A rate as written: a plain decimal of ASCII digits (no sign, no exponent, no spaces),
    of at most RATE_DIGITS significant digits, above 0 and at most MAX_RATE; a rate that
    passes converts any amount without overflow (money.convert)."""
    if not _RATE.fullmatch(text):
        raise _bad("query.rate", f"{entry!r}: a rate is a plain decimal number such as 1.165")
    whole, _, fraction = text.partition(".")
    if len((whole + fraction.rstrip("0")).lstrip("0")) > domain.money.RATE_DIGITS:
        raise _bad(
            "query.rate",
            f"{entry!r}: a rate has at most {domain.money.RATE_DIGITS} significant digits",
        )
    rate = Decimal(text)
    if rate <= 0:
        raise _bad("query.rate", f"{entry!r}: a rate is a positive number")
    if rate > domain.money.MAX_RATE:
        raise _bad("query.rate", f"{entry!r}: a rate is at most {domain.money.MAX_RATE}")
    return rate


def _plain(rate: Decimal) -> str:
    """A rate as a plain decimal, never in exponent notation (0.0000001, not 1E-7)."""
    return format(rate, "f")


def _bad(name: str, detail: str) -> ValidationFailed:
    return invalid(detail, name=name, reason=detail)
