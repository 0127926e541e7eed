"""Reports: per need (target, pledged, committed, delivered, gap), per pledge line, and totals
per recipient or donor (by category and unit in kind, by currency for money, with the funding
gap). Filters: period, donor, recipient, partnership, programme, category.

The period applies to when a pledge was made and a need posted (UTC dates, inclusive). A
partnership or programme filter keeps pledges made under it, and needs of its parties.
Totals (totals.py) count lines as need coverage does. A line's outstanding (money) and
remaining (goods) are what is still due of it (domain.due): nothing while its pledge is only
pledged or once it is withdrawn, as the pledge view, the lists and the totals show them.

HXL hashtags follow the FTS style (docs/exports.md, "HXL for pledges"): the donor is
`#org+funder`, the recipient `#org+impl` (each with `+code` for the registry id), money
`#value+required|pledged|committed|received|paid|outstanding|gap`, the category's DAC purpose
code `#sector+code` (the IATI mapping), the recipient's country `#country+code`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from services.pledges import domain
from services.pledges.formats.tables import Column, Table, money_keys
from services.pledges.queries.report_rows import (
    CLASS,
    CURRENCY,
    NEED_KEY,
    RECIPIENT,
    UNIT,
    Filters,
    class_cells,
    line_after,
    lines,
    need_rows,
    recipient_cells,
)
from shared import pagination
from shared.read_directory import countries, names

fmt = domain.quantities.fmt
ZERO = Decimal(0)


def _committed(r: asyncpg.Record, value: int | None) -> int | None:
    """A line's committed value as the totals count it: all of it once binding, what arrived
    once withdrawn (goods valued pro rata from the donor's estimate), nothing while pledged."""
    if value is None:
        return None
    if r["status"] in domain.BINDING:
        return value
    if r["status"] != "withdrawn":
        return 0
    if r["kind"] == "money":
        return int(r["received"])
    if not r["quantity"]:
        return 0
    return int((Decimal(value) * r["delivered"] / r["quantity"]).to_integral_value())


def _due(r: asyncpg.Record) -> Any:
    """What is still due of a line (domain.due): money outstanding, goods remaining."""
    if r["kind"] == "money":
        return domain.due(size=r["amount"], arrived=r["received"], pledge_status=r["status"])
    return domain.due(size=r["quantity"], arrived=r["delivered"], pledge_status=r["status"])


PLEDGE_COLUMNS = [
    Column("pledge_id", "Pledge", "#meta+id+pledge"),
    Column("line_id", "Line", "#meta+id+line"),
    Column("date", "Pledged on", "#date+pledged"),
    *Column.organisation("donor", "Donor", "#org+funder"),
    *RECIPIENT,
    Column("country", "Recipient country", "#country+code"),
    Column("partnership_id", "Partnership", "#activity+code+partnership"),
    Column("programme", "Programme", "#activity+name+programme"),
    Column("status", "Status", "#status"),
    *CLASS,
    Column("item", "Item", "#item+name"),
    Column("need_id", "Need", "#meta+need"),
    UNIT,
    Column("quantity", "Quantity", "#indicator+num+pledged", "quantity"),
    Column("delivered", "Delivered in good condition", "#indicator+num+delivered", "quantity"),
    Column("damaged", "Damaged", "#indicator+num+damaged", "quantity"),
    Column("short", "Short", "#indicator+num+short", "quantity"),
    Column("lost", "Lost", "#indicator+num+lost", "quantity"),
    Column("remaining", "Remaining", "#indicator+num+remaining", "quantity"),
    Column("weight_kg", "Estimated weight (kg)", "#indicator+num+weight", "quantity"),
    CURRENCY,
    Column("value", "Value", "#value+pledged", "money"),
    Column("committed", "Committed", "#value+committed", "money"),
    Column("received", "Received", "#value+received", "money"),
    Column("outstanding", "Outstanding", "#value+outstanding", "money"),
    Column("donor_figure", "Donor's own figure", "#meta+donor_figure"),
]

PLEDGE_MONEY = money_keys(PLEDGE_COLUMNS)


async def pledge_lines(
    conn: asyncpg.Connection, f: Filters, *, cursor: str | None, limit: int
) -> Table:
    """A page of the report's rows (keyset on made at, pledge, line ordinal)."""
    rows, next_cursor = pagination.page(
        await lines(conn, f, after=line_after(cursor), limit=limit + 1),
        limit=limit,
        key_of=lambda r: [r["made_at"].isoformat(), r["pledge_id"], str(r["ordinal"])],
    )
    org_names = await names(conn, [o for r in rows for o in (r["donor_id"], r["recipient_id"])])
    org_countries = await countries(conn, [r["recipient_id"] for r in rows])
    out = []
    for r in rows:
        money = r["kind"] == "money"
        value = r["amount"] if money else r["value_amount"]
        row = {
            "pledge_id": r["pledge_id"],
            "line_id": r["line_id"],
            "date": r["made_at"].date().isoformat(),
            "donor_id": r["donor_id"],
            "donor": org_names.get(r["donor_id"], r["donor_id"]),
            **recipient_cells(r, org_names, org_countries),
            "partnership_id": r["partnership_id"],
            "programme": r["programme"],
            "status": r["status"],
            **class_cells(r),
            "item": r["item"],
            "need_id": r["need_id"],
            "unit": r["unit"],
            "quantity": domain.quantities.fmt_or_none(r["quantity"]),
            "delivered": None if money else fmt(r["delivered"]),
            "damaged": None if money else fmt(r["damaged"]),
            "short": None if money else fmt(r["short"]),
            "lost": None if money else fmt(r["lost"]),
            "remaining": None if money else fmt(_due(r)),
            "weight_kg": domain.quantities.fmt_or_none(r["weight_kg"]),
            "currency": r["currency"] if money else r["value_currency"],
            "value": value,
            "committed": _committed(r, value),
            "received": r["received"] if money else None,
            "outstanding": _due(r) if money else None,
            "donor_figure": r["donor_figure"],
        }
        out.append(row)
    return Table(
        "pledges", list(PLEDGE_COLUMNS), out, f.as_json(), paged=True, next_cursor=next_cursor
    )


NEED_COLUMNS = [
    Column("need_id", "Need", "#meta+id"),
    Column("posted_on", "Posted on", "#date+posted"),
    Column("deadline", "Deadline", "#date+deadline"),
    *RECIPIENT,
    Column("country", "Country", "#country+code"),
    *CLASS,
    Column("description", "Description", "#item+name"),
    Column("priority", "Priority", "#meta+priority"),
    Column("serves", "Serves", "#meta+serves"),
    Column("status", "Status", "#status"),
    UNIT,
    *(
        Column(f"{k}_quantity", label, f"#indicator+num+{k}", "quantity")
        for k, label in (
            ("target", "Target"),
            ("pledged", "Pledged"),
            ("committed", "Committed"),
            ("delivered", "Delivered"),
            ("gap", "Gap"),
        )
    ),
    CURRENCY,
    *(
        Column(f"{k}_amount", label, f"#value+{tag}", "money")
        for k, tag, label in (
            ("target", "required", "Target amount"),
            ("pledged", "pledged", "Pledged amount"),
            ("committed", "committed", "Committed amount"),
            ("delivered", "received", "Received amount"),
            ("gap", "gap", "Funding gap"),
        )
    ),
]
NEED_MONEY = money_keys(NEED_COLUMNS)


async def needs(conn: asyncpg.Connection, f: Filters, *, cursor: str | None, limit: int) -> Table:
    """A page of the report's rows (keyset on posted at, need)."""
    rows, next_cursor = pagination.page(
        await need_rows(conn, f, after=pagination.decode(cursor, parts=NEED_KEY), limit=limit + 1),
        limit=limit,
        key_of=lambda r: [r["posted_at"].isoformat(), r["need_id"]],
    )
    org_names = await names(conn, [r["recipient_id"] for r in rows])
    org_countries = await countries(conn, [r["recipient_id"] for r in rows])
    out = []
    for r in rows:
        money = r["kind"] == "money"
        row: dict[str, Any] = {
            "need_id": r["need_id"],
            "posted_on": r["posted_at"].date().isoformat(),
            "deadline": r["deadline"].isoformat() if r["deadline"] else None,
            **recipient_cells(r, org_names, org_countries),
            **class_cells(r),
            "description": r["description"],
            "priority": r["priority"],
            "serves": list(r["serves"]),
            "status": r["status"],
            "unit": r["unit"],
            "currency": r["currency"],
        }
        for k in ("target", "pledged", "committed", "delivered", "gap"):
            row[f"{k}_quantity"] = None if money else fmt(r[k])
            row[f"{k}_amount"] = int(r[k]) if money else None
        out.append(row)
    return Table("needs", list(NEED_COLUMNS), out, f.as_json(), paged=True, next_cursor=next_cursor)
