"""IATI 2.03 activity XML written from what formats/iati.py loaded: a need as its recipient's
activity, a pledge as its donor's, their lines' pledges, commitments and arrivals as
transactions (docs/exports.md, "IATI")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from xml.etree import ElementTree as ET

import asyncpg

from services.pledges import domain
from services.pledges.formats.iati import (
    ACTIVITY_DATE,
    FINANCE_TYPE_STANDARD_GRANT,
    NEED_STATUS,
    ORGANISATION_TYPE,
    OTHER_ORGANISATION_TYPE,
    PLEDGE_STATUS,
    ROLE,
    SECTOR_VOCABULARY_DAC5,
    SECTORS,
    TRANSACTION_TYPE,
    VERSION,
    Data,
    need_activity_id,
    org_ref,
    pledge_activity_id,
)
from shared import xml_text


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.replace("_", "-"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _activity_date(activity: ET.Element, kind: str, day: date) -> ET.Element:
    """An activity's date of this kind (ACTIVITY_DATE: actual_start, planned_end, ...)."""
    return _sub(activity, "activity-date", type=ACTIVITY_DATE[kind], iso_date=day.isoformat())


def _narrative(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    el = _sub(parent, tag, **attrs)
    _sub(el, "narrative", text)
    return el


class _Writer:
    def __init__(self, data: Data) -> None:
        self.data = data

    def name(self, org: str) -> str:
        row = self.data.orgs.get(org)
        return str(row["name"]) if row else org

    def org_type(self, org: str) -> str:
        row = self.data.orgs.get(org)
        return ORGANISATION_TYPE.get(row["kind"], OTHER_ORGANISATION_TYPE) if row else "90"

    def country(self, org: str) -> str | None:
        row = self.data.orgs.get(org)
        return str(row["country"]) if row else None

    def organisation(self, parent: ET.Element, tag: str, org: str, **attrs: str) -> ET.Element:
        """`tag` for the organisation: its name, IATI identifier and type (and `attrs`)."""
        return _narrative(
            parent, tag, self.name(org), ref=org_ref(org), type=self.org_type(org), **attrs
        )

    def reporting(self, activity: ET.Element, org: str) -> None:
        self.organisation(activity, "reporting-org", org)

    def participant(self, activity: ET.Element, org: str, role: str, activity_id: str) -> None:
        self.organisation(
            activity, "participating-org", org, role=ROLE[role], activity_id=activity_id
        )

    def head(
        self, parent: ET.Element, identifier: str, changed_at: datetime, currency: str | None
    ) -> ET.Element:
        attrs = {
            "last-updated-datetime": changed_at.isoformat(),
            "{http://www.w3.org/XML/1998/namespace}lang": "en",
            "humanitarian": "1",
        }
        if currency:
            attrs["default-currency"] = currency
        activity = ET.SubElement(parent, "iati-activity", attrs)
        _sub(activity, "iati-identifier", identifier)
        return activity

    def place(self, activity: ET.Element, recipient: str, categories: list[str]) -> None:
        country = self.country(recipient)
        if country:
            _sub(activity, "recipient-country", code=country, percentage="100")
        codes = sorted({SECTORS[c].code for c in categories if c in SECTORS})
        for i, code in enumerate(codes):
            sector = next(s for s in SECTORS.values() if s.code == code)
            share = _shares(len(codes))[i]
            el = _sub(
                activity, "sector", vocabulary=SECTOR_VOCABULARY_DAC5, code=code, percentage=share
            )
            _sub(el, "narrative", sector.name)

    def transaction(self, activity: ET.Element, t: Transaction) -> None:
        el = _sub(activity, "transaction", ref=t.ref)
        _sub(el, "transaction-type", code=TRANSACTION_TYPE[t.kind])
        _sub(el, "transaction-date", iso_date=t.on.isoformat())
        _sub(
            el,
            "value",
            domain.money.format_minor(t.amount, t.currency),
            currency=t.currency,
            value_date=t.on.isoformat(),
        )
        _narrative(el, "description", t.description)
        provider = self.organisation(el, "provider-org", t.provider)
        provider.set("provider-activity-id", t.provider_activity)
        receiver = self.organisation(el, "receiver-org", t.receiver)
        if t.receiver_activity:
            receiver.set("receiver-activity-id", t.receiver_activity)

    # a need ----------------------------------------------------------------------------------

    def need(self, parent: ET.Element, n: asyncpg.Record) -> None:
        recipient = n["recipient_id"]
        identifier = need_activity_id(recipient, n["need_id"])
        money_lines = [
            r for r in self.data.lines if r["need_id"] == n["need_id"] and r["kind"] == "money"
        ]
        activity = self.head(parent, identifier, n["changed_at"], n["currency"])
        self.reporting(activity, recipient)
        _narrative(activity, "title", n["description"])
        _narrative(activity, "description", _need_text(n, self.name(recipient)))
        self.participant(activity, recipient, "accountable", identifier)
        self.participant(activity, recipient, "implementing", identifier)
        donors = sorted({r["donor_id"] for r in self.data.lines if r["need_id"] == n["need_id"]})
        for donor in donors:
            self.participant(activity, donor, "funding", identifier)
        _sub(activity, "activity-status", code=NEED_STATUS.get(n["status"], "2"))
        _activity_date(activity, "actual_start", n["posted_at"].date())
        if n["deadline"]:
            _activity_date(activity, "planned_end", n["deadline"])
        if n["state"] != "active":
            _activity_date(activity, "actual_end", n["changed_at"].date())
        self.place(activity, recipient, [n["category"]])
        _sub(activity, "default-finance-type", code=FINANCE_TYPE_STANDARD_GRANT)
        for line in money_lines:
            for t in self.line_transactions(line, incoming=True):
                self.transaction(activity, t)

    # a pledge --------------------------------------------------------------------------------

    def pledge(self, parent: ET.Element, p: asyncpg.Record) -> None:
        donor, recipient = p["donor_id"], p["recipient_id"]
        identifier = pledge_activity_id(donor, p["pledge_id"])
        lines = [r for r in self.data.lines if r["pledge_id"] == p["pledge_id"]]
        currencies = {r["currency"] or r["value_currency"] for r in lines} - {None}
        activity = self.head(
            parent, identifier, p["changed_at"], currencies.pop() if len(currencies) == 1 else None
        )
        self.reporting(activity, donor)
        title = p["description"] or f"Pledge from {self.name(donor)} to {self.name(recipient)}"
        _narrative(activity, "title", title)
        programme = self.data.programmes.get(p["partnership_id"] or "")
        _narrative(activity, "description", _pledge_text(p, lines, self.data, programme))
        self.participant(activity, donor, "funding", identifier)
        self.participant(activity, donor, "extending", identifier)
        self.participant(activity, recipient, "implementing", identifier)
        _sub(activity, "activity-status", code=PLEDGE_STATUS.get(p["status"], "2"))
        _activity_date(activity, "actual_start", p["made_at"].date())
        end = p["withdrawn_at"] or (p["changed_at"] if p["status"] == "fulfilled" else None)
        if end:
            _activity_date(activity, "actual_end", end.date())
        self.place(activity, recipient, [r["category"] for r in lines])
        _sub(activity, "default-finance-type", code=FINANCE_TYPE_STANDARD_GRANT)
        for line in lines:
            for t in self.line_transactions(line, incoming=False):
                self.transaction(activity, t)

    def line_transactions(self, r: asyncpg.Record, *, incoming: bool) -> list[Transaction]:
        """A line's pledge or commitment, what arrived, and a withdrawal's reduction."""
        key = (r["pledge_id"], r["line_id"])
        money = r["kind"] == "money"
        currency = r["currency"] if money else r["value_currency"]
        total = r["amount"] if money else r["value_amount"]
        if currency is None or total is None:
            return []  # goods without an estimated value: in the description only
        donor, recipient = r["donor_id"], r["recipient_id"]
        pledge_activity = pledge_activity_id(donor, r["pledge_id"])
        need_activity = need_activity_id(recipient, r["need_id"]) if r["need_id"] else None
        committed = r["committed_at"] is not None
        if incoming:
            promise, paid = (
                ("incoming_commitment" if committed else "incoming_pledge"),
                "incoming_funds",
            )
        else:
            promise, paid = (
                ("outgoing_commitment" if committed else "outgoing_pledge"),
                "disbursement",
            )
        ref = f"{r['pledge_id']}/{r['line_id']}"

        def tx(kind: str, suffix: str, on: date, amount: int, text: str) -> Transaction:
            return Transaction(
                ref=f"{ref}/{suffix}",
                kind=kind,
                on=on,
                amount=amount,
                currency=currency,
                description=text,
                provider=donor,
                provider_activity=pledge_activity,
                receiver=recipient,
                receiver_activity=need_activity,
            )

        promised_on = (r["committed_at"] or r["made_at"]).date()
        word = "committed" if committed else "pledged"
        out = [tx(promise, word, promised_on, total, f"{r['item']}: {word}")]
        arrived = 0
        if money:
            for x in self.data.receipts.get(key, []):
                arrived += x["amount"]
                out.append(
                    tx(
                        paid,
                        f"receipt/{x['event_id']}",
                        x["received_on"],
                        x["amount"],
                        f"{r['item']}: received by the recipient ({x['reference']})",
                    )
                )
        else:
            for d in self.data.deliveries.get(key, []):
                share = _pro_rata(total, d["received"], r["quantity"])
                arrived += share
                out.append(
                    tx(
                        paid,
                        f"delivery/{d['convoy_id']}/{d['manifest_line_id']}",
                        d["occurred_at"].date(),
                        share,
                        f"{r['item']}: {domain.quantities.fmt(d['received'])} {r['unit']}"
                        f" delivered in good condition by convoy {d['convoy_id']}"
                        " (valued pro rata from the donor's estimate)",
                    )
                )
        if r["withdrawn_at"] is not None and total > arrived:
            out.append(
                tx(
                    promise,
                    "withdrawn",
                    r["withdrawn_at"].date(),
                    arrived - total,
                    f"{r['item']}: withdrawn ({r['withdrawal_reason'] or 'no reason given'})",
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class Transaction:
    ref: str
    kind: str
    on: date
    amount: int
    currency: str
    description: str
    provider: str
    provider_activity: str
    receiver: str
    receiver_activity: str | None


def _pro_rata(total: int, part: Decimal, whole: Decimal | None) -> int:
    if not whole:
        return 0
    return int((Decimal(total) * part / whole).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _shares(n: int) -> list[str]:
    """Percentages summing to 100 with two decimals, the remainder on the first."""
    if n == 1:
        return ["100"]
    base = (Decimal(100) / n).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    first = Decimal(100) - base * (n - 1)
    return [str(first)] + [str(base)] * (n - 1)


def _figure(value: Any, unit: str | None, currency: str | None) -> str:
    if unit:
        return f"{domain.quantities.fmt(Decimal(value))} {unit}"
    assert currency is not None
    return f"{domain.money.format_minor(int(value), currency)} {currency}"


def _need_text(n: asyncpg.Record, recipient: str) -> str:
    def f(k: str) -> str:
        return _figure(n[k], n["unit"], n["currency"])

    serves = f"; serves {', '.join(n['serves'])}" if n["serves"] else ""
    return (
        f"Need posted by {recipient} ({n['category']}, {n['priority']} priority{serves}):"
        f" target {f('target')}; pledged {f('pledged')}, committed {f('committed')},"
        f" delivered {f('delivered')}, gap {f('gap')}."
    )


def _pledge_text(
    p: asyncpg.Record, lines: list[asyncpg.Record], data: Data, programme: str | None
) -> str:
    parts = []
    for r in lines:
        if r["kind"] == "money":
            parts.append(
                f"{r['item']}: {_figure(r['amount'], None, r['currency'])},"
                f" received {_figure(r['received'], None, r['currency'])}"
            )
        else:
            q = domain.quantities.fmt
            parts.append(
                f"{r['item']}: {q(r['quantity'])} {r['unit']}, delivered in good condition"
                f" {q(r['delivered'])} (damaged {q(r['damaged'])}, short {q(r['short'])},"
                f" lost {q(r['lost'])})"
            )
    under = ""
    if p["partnership_id"]:
        under = f" under partnership {p['partnership_id']}"
        if programme:
            under += f" (programme {programme})"
    return f"Pledge {p['pledge_id']} ({p['status']}){under}. " + "; ".join(parts) + "."


def document(data: Data, *, generated_at: datetime) -> bytes:
    """The IATI activities document: the needs, then the pledges."""
    root = ET.Element(
        "iati-activities", {"version": VERSION, "generated-datetime": generated_at.isoformat()}
    )
    writer = _Writer(data)
    for n in data.needs:
        writer.need(root, n)
    for p in data.pledges:
        writer.pledge(root, p)
    return xml_text.to_bytes(root)
