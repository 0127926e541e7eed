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

import asyncpg

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
