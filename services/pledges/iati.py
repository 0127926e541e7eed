"""IATI 2.03 activity XML: needs and pledges as `iati-activity` elements, per organisation or
per partnership programme (docs/exports.md, section "IATI", explains every choice).

- A need is its recipient's activity: the recipient reports it (accountable and implementing),
  the donors whose money lines answer it take part as funders; their money arrives as incoming
  pledges (13), incoming commitments (11) and incoming funds (1).
- A pledge is its donor's activity toward the recipient: the donor reports it (funding and
  extending), the recipient implements; each line is an outgoing pledge (12) until the pledge
  is committed, then an outgoing commitment (2); money received and goods delivered in good
  condition are disbursements (3). Goods count only with the donor's estimated value (valued
  pro rata per delivery); without one they appear in the description, never as a transaction.
- A withdrawal reduces the line's pledge or commitment by what never arrived (a negative
  transaction of the same type, on the day of the withdrawal), as IATI records decreases.
- Identifiers: an organisation is `XI-TWINAID-<organisation id>` (a placeholder registration
  agency prefix until partners register with IATI), an activity
  `<organisation identifier>-need-<need id>` or `-pledge-<pledge id>`.
- Sectors: the category's OECD DAC 5-digit purpose code (vocabulary 1), table SECTORS.
Internal notes and contacts are never exported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from xml.etree import ElementTree as ET

import asyncpg

from services.pledges import domain

VERSION = "2.03"
ORG_PREFIX = "XI-TWINAID-"

# IATI codelists (2.03) used below
TRANSACTION_TYPE = {
    "incoming_funds": "1",
    "outgoing_commitment": "2",
    "disbursement": "3",
    "incoming_commitment": "11",
    "outgoing_pledge": "12",
    "incoming_pledge": "13",
}
ROLE = {"funding": "1", "accountable": "2", "extending": "3", "implementing": "4"}
ACTIVITY_DATE = {"actual_start": "2", "planned_end": "3", "actual_end": "4"}
SECTOR_VOCABULARY_DAC5 = "1"
FINANCE_TYPE_STANDARD_GRANT = "110"

# the registry's organisation kinds -> IATI OrganisationType
ORGANISATION_TYPE = {
    "municipality": "11",  # Local Government
    "region": "11",  # Local Government (sub-national)
    "national_body": "10",  # Government
    "hospital": "15",  # Other Public Sector
    "foundation": "60",  # Foundation
    "ngo": "22",  # National NGO
    "association": "22",  # National NGO
    "company": "70",  # Private Sector
}
OTHER_ORGANISATION_TYPE = "90"  # Other

# the needs' statuses and the pledges' statuses -> IATI ActivityStatus
NEED_STATUS = {
    "open": "1",  # Pipeline/identification: stated, nothing pledged yet
    "partly_covered": "2",  # Implementation
    "covered": "2",
    "closed": "4",  # Closed
    "cancelled": "5",  # Cancelled
}
PLEDGE_STATUS = {
    "pledged": "1",  # Pipeline/identification: not binding yet
    "committed": "2",  # Implementation
    "partly_fulfilled": "2",
    "fulfilled": "4",  # Closed: everything arrived
    "withdrawn": "5",  # Cancelled
}


@dataclass(frozen=True, slots=True)
class Sector:
    code: str
    name: str


# every category -> OECD DAC 5-digit purpose code (vocabulary 1); all of it is emergency aid to
# a country at war, so the humanitarian codes (720xx) come first
SECTORS: dict[str, Sector] = {
    "generators": Sector("72010", "Material relief assistance and services"),
    "medicines": Sector("72011", "Basic Health Care Services in Emergencies"),
    "antibiotics": Sector("72011", "Basic Health Care Services in Emergencies"),
    "medical_equipment": Sector("72011", "Basic Health Care Services in Emergencies"),
    "food": Sector("72040", "Emergency food assistance"),
    "water": Sector("72010", "Material relief assistance and services"),
    "shelter": Sector("72010", "Material relief assistance and services"),
    "clothing": Sector("72010", "Material relief assistance and services"),
    "hygiene": Sector("72010", "Material relief assistance and services"),
    "fuel": Sector("72010", "Material relief assistance and services"),
    "vehicles": Sector("72050", "Relief co-ordination and support services"),
    "equipment": Sector("72010", "Material relief assistance and services"),
    "other": Sector("99810", "Sectors not specified"),
}


def org_ref(organisation_id: str) -> str:
    return f"{ORG_PREFIX}{organisation_id}"


def need_activity_id(recipient_id: str, need_id: str) -> str:
    return f"{org_ref(recipient_id)}-need-{need_id}"


def pledge_activity_id(donor_id: str, pledge_id: str) -> str:
    return f"{org_ref(donor_id)}-pledge-{pledge_id}"


# --- reading --------------------------------------------------------------------------------


@dataclass
class Data:
    needs: list[asyncpg.Record]
    pledges: list[asyncpg.Record]
    lines: list[asyncpg.Record]
    receipts: dict[tuple[str, str], list[asyncpg.Record]]
    deliveries: dict[tuple[str, str], list[asyncpg.Record]]
    orgs: dict[str, asyncpg.Record]
    programmes: dict[str, str | None]

    @property
    def empty(self) -> bool:
        return not self.needs and not self.pledges


async def organisation_known(conn: asyncpg.Connection, organisation_id: str) -> bool:
    return bool(
        await conn.fetchval("SELECT 1 FROM directory WHERE organisation_id = $1", organisation_id)
    )


async def load(
    conn: asyncpg.Connection, *, organisation: str | None = None, partnership: str | None = None
) -> Data:
    """What an export of one organisation (its needs, the pledges it made or received) or one
    partnership (pledges made under it, the needs of its two parties) shows."""
    if partnership is not None:
        parties = await conn.fetchrow(
            "SELECT org_a, org_b FROM partnership_directory WHERE partnership_id = $1",
            partnership,
        )
        recipients = [parties["org_a"], parties["org_b"]] if parties else []
        pledges = await conn.fetch(
            "SELECT * FROM pledges WHERE partnership_id = $1 ORDER BY made_at, pledge_id",
            partnership,
        )
    else:
        recipients = [organisation]
        pledges = await conn.fetch(
            "SELECT * FROM pledges WHERE donor_id = $1 OR recipient_id = $1"
            " ORDER BY made_at, pledge_id",
            organisation,
        )
    needs = await conn.fetch(
        "SELECT * FROM needs WHERE recipient_id = ANY($1) ORDER BY posted_at, need_id", recipients
    )
    lines = await conn.fetch(
        "SELECT l.*, p.donor_id, p.recipient_id, p.status AS pledge_status, p.made_at,"
        " p.committed_at, p.withdrawn_at, p.withdrawal_reason"
        " FROM pledge_lines l JOIN pledges p USING (pledge_id)"
        " WHERE l.pledge_id = ANY($1) OR l.need_id = ANY($2)"
        " ORDER BY p.made_at, l.pledge_id, l.ordinal",
        [p["pledge_id"] for p in pledges],
        [n["need_id"] for n in needs],
    )
    line_pledges = sorted({r["pledge_id"] for r in lines})
    receipts: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT * FROM receipts WHERE pledge_id = ANY($1) ORDER BY received_on, event_id",
        line_pledges,
    ):
        receipts[r["pledge_id"], r["line_id"]].append(r)
    deliveries: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT * FROM deliveries WHERE pledge_id = ANY($1) ORDER BY occurred_at, event_id",
        line_pledges,
    ):
        deliveries[r["pledge_id"], r["line_id"]].append(r)
    ids = {n["recipient_id"] for n in needs} | {
        o for r in lines for o in (r["donor_id"], r["recipient_id"])
    }
    ids |= {o for p in pledges for o in (p["donor_id"], p["recipient_id"])}
    orgs = {
        r["organisation_id"]: r
        for r in await conn.fetch(
            "SELECT organisation_id, name, kind, country FROM directory"
            " WHERE organisation_id = ANY($1)",
            sorted(ids),
        )
    }
    programmes = {
        r["partnership_id"]: r["programme"]
        for r in await conn.fetch(
            "SELECT partnership_id, programme FROM partnership_directory"
            " WHERE partnership_id = ANY($1)",
            sorted({p["partnership_id"] for p in pledges if p["partnership_id"]}),
        )
    }
    return Data(needs, pledges, lines, receipts, deliveries, orgs, programmes)


# --- writing --------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.replace("_", "-"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


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

    def reporting(self, activity: ET.Element, org: str) -> None:
        _narrative(
            activity, "reporting-org", self.name(org), ref=org_ref(org), type=self.org_type(org)
        )

    def participant(self, activity: ET.Element, org: str, role: str, activity_id: str) -> None:
        _narrative(
            activity,
            "participating-org",
            self.name(org),
            ref=org_ref(org),
            type=self.org_type(org),
            role=ROLE[role],
            activity_id=activity_id,
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
        provider = _narrative(
            el,
            "provider-org",
            self.name(t.provider),
            ref=org_ref(t.provider),
            type=self.org_type(t.provider),
        )
        provider.set("provider-activity-id", t.provider_activity)
        receiver = _narrative(
            el,
            "receiver-org",
            self.name(t.receiver),
            ref=org_ref(t.receiver),
            type=self.org_type(t.receiver),
        )
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
        _sub(
            activity,
            "activity-date",
            type=ACTIVITY_DATE["actual_start"],
            iso_date=n["posted_at"].date().isoformat(),
        )
        if n["deadline"]:
            _sub(
                activity,
                "activity-date",
                type=ACTIVITY_DATE["planned_end"],
                iso_date=n["deadline"].isoformat(),
            )
        if n["state"] != "active":
            _sub(
                activity,
                "activity-date",
                type=ACTIVITY_DATE["actual_end"],
                iso_date=n["changed_at"].date().isoformat(),
            )
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
        _sub(
            activity,
            "activity-date",
            type=ACTIVITY_DATE["actual_start"],
            iso_date=p["made_at"].date().isoformat(),
        )
        end = p["withdrawn_at"] or (p["changed_at"] if p["status"] == "fulfilled" else None)
        if end:
            _sub(
                activity,
                "activity-date",
                type=ACTIVITY_DATE["actual_end"],
                iso_date=end.date().isoformat(),
            )
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
    ET.indent(root)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out
