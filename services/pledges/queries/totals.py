"""Totals per recipient or per donor: in kind by category and unit, money by currency.

Lines count as need coverage counts them (domain.share): withdrawn lines keep only what
arrived, committed is all of a line once its pledge is binding; outstanding is what is still
due of each line (domain.due: committed less received), as the pledge view, the lists and the
pledges report show it. Requested and gap come from the recipient's needs: cancelled ones are
left out (the request was withdrawn), closed ones count as requested with their gap, 0 as every
view shows it (domain.summarise). A donor's totals have neither.

HXL (FTS style): the organisation is `#org+impl` per recipient, `#org+funder` per donor; what
arrived is `#value+received` for a recipient and `#value+paid` for a donor; requested is
`#value+required`.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from services.pledges import domain
from services.pledges.formats.tables import Column, Table
from services.pledges.queries.report_rows import (
    CLASS,
    CURRENCY,
    UNIT,
    Filters,
    line_organisations,
    lines,
    need_organisations,
    need_rows,
    sector,
)
from shared import pagination
from shared.read_directory import countries, names

fmt = domain.quantities.fmt
ZERO = Decimal(0)

By = Literal["recipient", "donor"]
TOTAL_MONEY = ["requested", "pledged", "committed", "received", "outstanding", "funding_gap"]
_QTY = (
    "requested_quantity",
    "pledged_quantity",
    "committed_quantity",
    "delivered_quantity",
    "damaged",
    "short",
    "lost",
    "gap_quantity",
)


ORG_TAG = {"recipient": "#org+impl", "donor": "#org+funder"}
MONEY_TAG = {
    "requested": "#value+required",
    "funding_gap": "#value+gap",
}


def _money_tag(key: str, by: By) -> str:
    if key == "received" and by == "donor":
        return "#value+paid"
    return MONEY_TAG.get(key, f"#value+{key}")


def total_columns(by: By) -> list[Column]:
    return [
        *Column.organisation("organisation", by.title(), ORG_TAG[by]),
        Column("country", "Country", "#country+code"),
        *CLASS,
        UNIT,
        *(
            Column(
                k,
                k.replace("_quantity", "").replace("_", " ").capitalize(),
                f"#indicator+num+{k.replace('_quantity', '')}",
                "quantity",
            )
            for k in _QTY
        ),
        CURRENCY,
        *(
            Column(k, k.replace("_", " ").capitalize(), _money_tag(k, by), "money")
            for k in TOTAL_MONEY
        ),
    ]


def _group(
    groups: dict[tuple[str, ...], dict[str, Any]], key: tuple[str, ...], kind: str
) -> dict[str, Any]:
    if key not in groups:
        org, a, b = key
        fields = _QTY if kind == "in_kind" else TOTAL_MONEY
        groups[key] = {
            "organisation_id": org,
            "kind": kind,
            "category": a if kind == "in_kind" else None,
            "unit": b if kind == "in_kind" else None,
            "currency": b if kind == "money" else None,
            **dict.fromkeys(fields, ZERO if kind == "in_kind" else 0),
        }
    return groups[key]


def _line_figures(r: asyncpg.Record) -> tuple[domain.Share, Decimal | int]:
    """A line's pledged, committed and arrived as need coverage counts them (domain.share:
    withdrawn, only what arrived; committed once binding) and what is still due of it
    (domain.due), in its own unit or currency."""
    money = r["kind"] == "money"
    size = Decimal(r["amount"]) if money else r["quantity"]
    arrived = Decimal(r["received"]) if money else r["delivered"]
    part = domain.share(
        domain.Contribution(pledge_status=r["status"], size=size, delivered=arrived), unit=None
    )
    due = (
        domain.due(size=r["amount"], arrived=r["received"], pledge_status=r["status"])
        if money
        else domain.due(size=r["quantity"], arrived=r["delivered"], pledge_status=r["status"])
    )
    return part, due


def _add_lines(
    groups: dict[tuple[str, ...], dict[str, Any]], rows: Iterable[asyncpg.Record], by: By
) -> None:
    for r in rows:
        org = r[f"{by}_id"]
        part, due = _line_figures(r)
        if r["kind"] == "money":
            g = _group(groups, (org, "", r["currency"]), "money")
            g["pledged"] += int(part.pledged)
            g["committed"] += int(part.committed)
            g["received"] += r["received"]
            g["outstanding"] += due
            continue
        g = _group(groups, (org, r["category"], r["unit"]), "in_kind")
        g["pledged_quantity"] += part.pledged
        g["committed_quantity"] += part.committed
        for k in ("damaged", "short", "lost"):
            g[k] += r[k]
        g["delivered_quantity"] += r["delivered"]


def _add_needs(
    groups: dict[tuple[str, ...], dict[str, Any]], rows: Iterable[asyncpg.Record]
) -> None:
    for r in rows:
        if r["state"] == "cancelled":
            continue  # withdrawn by its recipient: nothing was requested
        gap = r["gap"]  # domain.summarise: none left once the need is closed
        if r["kind"] == "money":
            g = _group(groups, (r["recipient_id"], "", r["currency"]), "money")
            g["requested"] += int(r["target"])
            g["funding_gap"] += int(gap)
        else:
            g = _group(groups, (r["recipient_id"], r["category"], r["unit"]), "in_kind")
            g["requested_quantity"] += r["target"]
            g["gap_quantity"] += gap


async def totals(
    conn: asyncpg.Connection, f: Filters, *, by: By, cursor: str | None, limit: int
) -> Table:
    """A page of `limit` organisations (by id, keyset), each with all its rows: in kind one per
    category and unit, money one per currency (closed lists: a page's rows are bounded)."""
    after = pagination.decode(cursor, parts=(str,))
    start = after[0] if after else None
    found = set(await line_organisations(conn, f, by=by, after=start, limit=limit + 1))
    if by == "recipient":
        found |= set(await need_organisations(conn, f, after=start, limit=limit + 1))
    organisations, next_cursor = pagination.page(
        sorted(found)[: limit + 1], limit=limit, key_of=lambda o: [o]
    )
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    if organisations:
        donors = organisations if by == "donor" else None
        recipients = organisations if by == "recipient" else None
        _add_lines(groups, await lines(conn, f, donors=donors, recipients=recipients), by)
        if by == "recipient":
            _add_needs(groups, await need_rows(conn, f, recipients=organisations))
    org_names = await names(conn, [k[0] for k in groups])
    org_countries = await countries(conn, [k[0] for k in groups])
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], groups[k]["kind"], k[1], k[2])):
        row = groups[key]
        row["organisation"] = org_names.get(key[0], key[0])
        row["country"] = org_countries.get(key[0])
        row["sector"] = sector(row["category"])
        if row["kind"] == "in_kind":
            row.update({k: fmt(row[k]) for k in _QTY})
            if by == "donor":
                row["requested_quantity"] = row["gap_quantity"] = None
        elif by == "donor":
            row["requested"] = row["funding_gap"] = None
        rows.append(row)
    return Table(
        f"totals-by-{by}",
        total_columns(by),
        rows,
        {**f.as_json(), "by": by},
        paged=True,
        next_cursor=next_cursor,
    )


def converted_summary(table: Table, keys: list[str]) -> dict[str, Any]:
    """Sums of the converted money columns of the page's rows, in the conversion's currency."""
    assert table.conversion is not None
    return {
        "currency": table.conversion.target,
        **{k: sum(r.get(f"{k}_converted") or 0 for r in table.rows) for k in keys},
    }
