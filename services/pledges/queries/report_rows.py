"""The rows the reports and totals read (queries/reports.py, queries/totals.py): pledge lines
and needs under the reports' filters, a page at a time, with their organisations and sectors."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.pledges import domain
from services.pledges.formats.iati import SECTORS
from services.pledges.formats.tables import Column
from shared import pagination
from shared.domain_checks import ascii_digits

fmt = domain.quantities.fmt
ZERO = Decimal(0)

# the columns every report that has them declares alike: who received, what kind of thing (with
# its DAC sector), in which unit or currency
RECIPIENT = Column.organisation("recipient", "Recipient", "#org+impl")
CLASS = [
    Column("kind", "Kind", "#meta+kind"),
    Column("category", "Category", "#item+type"),
    Column("sector", "DAC sector", "#sector+code"),
]
UNIT = Column("unit", "Unit", "#item+unit")
CURRENCY = Column("currency", "Currency", "#currency")


def recipient_cells(
    row: asyncpg.Record, names: dict[str, str], countries: dict[str, str]
) -> dict[str, Any]:
    """A row's RECIPIENT columns and its country (the name its id where the directory has none)."""
    recipient = row["recipient_id"]
    return {
        "recipient_id": recipient,
        "recipient": names.get(recipient, recipient),
        "country": countries.get(recipient),
    }


def class_cells(row: asyncpg.Record) -> dict[str, Any]:
    """A row's CLASS columns."""
    return {"kind": row["kind"], "category": row["category"], "sector": sector(row["category"])}


@dataclass(frozen=True, slots=True)
class Filters:
    date_from: date | None = None
    date_to: date | None = None
    donor: str | None = None
    recipient: str | None = None
    partnership: str | None = None
    programme: str | None = None
    category: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}


_LINES = """
SELECT p.pledge_id, p.donor_id, p.recipient_id, p.partnership_id, pd.programme, p.status,
       p.made_at, l.ordinal, l.line_id, l.kind, l.need_id, l.item, l.category, l.unit, l.quantity,
       l.weight_kg, l.value_amount, l.value_currency, l.currency, l.amount, l.delivered,
       l.damaged, l.short, l.lost, l.received, l.donor_figure
FROM pledge_lines l JOIN pledges p USING (pledge_id)
LEFT JOIN partnership_directory pd ON pd.partnership_id = p.partnership_id
WHERE ($1::date IS NULL OR (p.made_at AT TIME ZONE 'UTC')::date >= $1)
  AND ($2::date IS NULL OR (p.made_at AT TIME ZONE 'UTC')::date <= $2)
  AND ($3::text IS NULL OR p.donor_id = $3) AND ($4::text IS NULL OR p.recipient_id = $4)
  AND ($5::text IS NULL OR p.partnership_id = $5)
  AND ($6::text IS NULL OR lower(pd.programme) = lower($6))
  AND ($7::text IS NULL OR l.category = $7)
  AND ($8::timestamptz IS NULL OR (p.made_at, p.pledge_id, l.ordinal) > ($8, $9, $10::int))
  AND ($12::text[] IS NULL OR p.donor_id = ANY($12))
  AND ($13::text[] IS NULL OR p.recipient_id = ANY($13))
ORDER BY p.made_at, p.pledge_id, l.ordinal
LIMIT $11
"""

_NEEDS = """
SELECT * FROM needs n
WHERE ($1::date IS NULL OR (n.posted_at AT TIME ZONE 'UTC')::date >= $1)
  AND ($2::date IS NULL OR (n.posted_at AT TIME ZONE 'UTC')::date <= $2)
  AND ($3::text IS NULL OR n.recipient_id = $3) AND ($4::text IS NULL OR n.category = $4)
  AND (($5::text IS NULL AND $6::text IS NULL) OR EXISTS (
        SELECT 1 FROM partnership_directory pd
        WHERE n.recipient_id IN (pd.org_a, pd.org_b)
          AND ($5::text IS NULL OR pd.partnership_id = $5)
          AND ($6::text IS NULL OR lower(pd.programme) = lower($6))))
  AND ($7::timestamptz IS NULL OR (n.posted_at, n.need_id) > ($7, $8))
  AND ($10::text[] IS NULL OR n.recipient_id = ANY($10))
ORDER BY n.posted_at, n.need_id
LIMIT $9
"""


def _line_filters(f: Filters) -> tuple[Any, ...]:
    """$1-$7 of _LINES."""
    return (f.date_from, f.date_to, f.donor, f.recipient, f.partnership, f.programme, f.category)


def _need_filters(f: Filters) -> tuple[Any, ...]:
    """$1-$6 of _NEEDS (needs have no donor)."""
    return (f.date_from, f.date_to, f.recipient, f.category, f.partnership, f.programme)


LINE_KEY: tuple[pagination.Part, ...] = (datetime, str, str)  # made at, pledge, line ordinal
NEED_KEY: tuple[pagination.Part, ...] = (datetime, str)  # posted at, need


def line_after(cursor: str | None) -> list[Any] | None:
    """The sort key of a pledges report's cursor: made at, pledge id, the line's ordinal."""
    after = pagination.decode(cursor, parts=LINE_KEY)
    if after is not None:
        ordinal = ascii_digits(after[2], max_digits=9)
        if ordinal is None:
            reason = "not a cursor this list gave (its line is not a number): pass back next_cursor"
            raise pagination.refused(reason)
        after[2] = ordinal
    return after


async def lines(
    conn: asyncpg.Connection,
    f: Filters,
    *,
    after: list[Any] | None = None,
    limit: int | None = None,
    donors: list[str] | None = None,
    recipients: list[str] | None = None,
) -> list[asyncpg.Record]:
    """Pledge lines by made at, pledge, ordinal: those after the key `after` (line_after), at
    most `limit` (None: all), of these donors and recipients only (None: any)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        _LINES,
        *_line_filters(f),
        *(after or (None, None, None)),
        limit,
        donors,
        recipients,
    )
    return rows


async def need_rows(
    conn: asyncpg.Connection,
    f: Filters,
    *,
    after: list[Any] | None = None,
    limit: int | None = None,
    recipients: list[str] | None = None,
) -> list[asyncpg.Record]:
    """Needs by posted at, need: those after the key `after`, at most `limit` (None: all), of
    these recipients only (None: any)."""
    if f.donor is not None:
        return []  # needs have no donor
    rows: list[asyncpg.Record] = await conn.fetch(
        _NEEDS,
        *_need_filters(f),
        *(after or (None, None)),
        limit,
        recipients,
    )
    return rows


async def line_organisations(
    conn: asyncpg.Connection, f: Filters, *, by: str, after: str | None, limit: int
) -> list[str]:
    """The donors or recipients (`by`) of the lines the filters keep, by id, after `after`."""
    column = {"donor": "donor_id", "recipient": "recipient_id"}[by]
    return [
        r["org"]
        for r in await conn.fetch(
            f'SELECT DISTINCT {column} COLLATE "C" AS org FROM ({_LINES}) x'
            # in code point order, as the totals sort the merged ids (C collation)
            f' WHERE $14::text IS NULL OR {column} > $14 COLLATE "C"'
            " ORDER BY org LIMIT $15",
            *_line_filters(f),
            *[None] * 6,  # $8-$13: the inner query unpaged, of any donor and recipient
            after,
            limit,
        )
    ]


async def need_organisations(
    conn: asyncpg.Connection, f: Filters, *, after: str | None, limit: int
) -> list[str]:
    """The recipients of the needs the filters keep, by id, after `after`."""
    if f.donor is not None:
        return []  # needs have no donor
    return [
        r["org"]
        for r in await conn.fetch(
            f'SELECT DISTINCT recipient_id COLLATE "C" AS org FROM ({_NEEDS}) y'
            ' WHERE $11::text IS NULL OR recipient_id > $11 COLLATE "C"'
            " ORDER BY org LIMIT $12",
            *_need_filters(f),
            *[None] * 4,  # $7-$10: the inner query unpaged, of any recipient
            after,
            limit,
        )
    ]


def sector(category: str | None) -> str | None:
    """The category's OECD DAC 5-digit purpose code (services/pledges/formats/iati.py SECTORS)."""
    return SECTORS[category].code if category in SECTORS else None
