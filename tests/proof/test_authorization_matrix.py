"""Every write endpoint x role x own/other organisation x missing/revoked key, against policy.

The write endpoints are read from each app's OpenAPI (POST/PUT/PATCH/DELETE); each must have a
`Case` below, which states who may write (the policy, as data) and prepares, for every call, a
valid body and a target that exists in a state where the action is allowed (created beforehand
through the API with a key that may do it; fresh ids per call). Each call acts for organisation
`lille` and is made by a key of `lille` (own) or of `leeds` (other, a party to nothing) for
every role, with no key and with a revoked key. So a refusal can only come from authorization:
the callers the policy names must get a 2xx and append events; every other valid key a 403
appending nothing; no key and a revoked key a 401; every 4xx is problem+json, nothing is a 5xx.
`POST /v1/audit/verify` is a read with a body (auditors): 200 appending nothing.

Webhook subscriptions (`/v1/webhooks`, every service) are rows, not events: their `Case` names
the table (`Rows`), and a write there must append nothing to the log; an accepted one changes
exactly one row, its caller's organisation's (a new one bound to the calling key, or the target
named in its path), a refused one changes none. Another organisation's subscription is not
visible (`Hidden`): its keys get 404, the very answer an id that does not exist gets.

The table is printed (pytest -s) and written to docs/proof/authorization-matrix.md.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.shipments import subscriptions
from shared import directory, privacy
from shared.auth import Role, revoke
from shared.incoming import Handler, Incoming
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for

SERVICES = ["registry", "pledges", "shipments"]
OWN, OTHER = "lille", "leeds"
PARTNER = "kyiv"  # the Ukrainian side of lille's pledges, partnerships and convoys
DONOR = "paris"  # sends lille the convoys lille confirms the delivery of
CARRIER = "transports-nord"  # carries every convoy: lille's members are not its carrier
DOCS = Path(os.environ.get("TWINAID_PROOF_DOCS", "docs/proof"))
OUT = Path(os.environ.get("TWINAID_PROOF_OUT", ".data/proof"))
WRITE_METHODS = {"post", "put", "patch", "delete"}
NO_KEY, REVOKED = "no key", "revoked key"

# The callers, as labelled in the table: every role of the acting organisation and of another.
MEMBER, LOGISTICS = "member (own)", "logistics (own)"
ADMINS = frozenset({"registry_admin (own)", "registry_admin (other)"})
ORG_ADMIN = "org_admin (own)"  # manages its own organisation's API keys, nothing else
AUDITORS = frozenset({"auditor (own)", "auditor (other)"})


NOW = datetime.now(UTC)
YESTERDAY = (NOW - timedelta(days=1)).date().isoformat()


def _ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


Body = dict[str, Any]
Target = tuple[str, Body | None]  # the path, and the JSON body (None: no body)


@dataclass
class Setup:
    """Makes what a call needs through the service's own API, with keys that may do it."""

    client: httpx.AsyncClient
    url: str
    keys: dict[tuple[str, Role], str] = field(default_factory=dict)

    async def ok(self, path: str, body: Body, *, org: str, role: Role, method: str = "POST") -> Any:
        if (org, role) not in self.keys:
            self.keys[org, role] = await issue_key(self.url, organisation=org, roles=[role])
        response = await self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {self.keys[org, role]}"}
        )
        assert response.is_success, f"setup {method} {path}: {response.status_code} {response.text}"
        return response.json()


Prepare = Callable[[Setup, int], Awaitable[Target]]


@dataclass(frozen=True)
class Rows:
    """A write that stores rows of `table` (with `organisation` and `key_id` columns, keyed by
    `key`) instead of appending events."""

    table: str
    key: str


@dataclass(frozen=True)
class Hidden:
    """Callers to whom the target does not exist: 404, as for `absent(path)`, the same call on
    a target that was never made."""

    who: frozenset[str]
    absent: Callable[[str], str]


@dataclass(frozen=True)
class Case:
    """`may`: the caller labels allowed to make this call; `read`: it appends nothing;
    `rows`: it stores a row there and appends nothing; `hidden`: who gets 404 rather than 403."""

    may: frozenset[str]
    prepare: Prepare
    read: bool = False
    rows: Rows | None = None
    hidden: Hidden | None = None


def label(role: Role, side: str) -> str:
    return f"{role.value} ({side})"


def may(*callers: str | frozenset[str]) -> frozenset[str]:
    out: set[str] = set()
    for c in callers:
        out |= {c} if isinstance(c, str) else c
    return frozenset(out)


def plain(path: str, body: Callable[[int], Body]) -> Prepare:
    """A call that needs nothing made beforehand."""

    async def prepare(s: Setup, n: int) -> Target:
        return path, body(n)

    return prepare


VERIFY = Case(AUDITORS, plain("/v1/audit/verify", lambda n: {"checkpoints": []}), read=True)


# -- webhooks (shared/webhook_routes.py, docs/webhooks.md), the same in every service: any valid
# key subscribes, for its own organisation (the request names none: a key of leeds subscribes
# leeds, bound to that key, which decides what is delivered); a subscription is its
# organisation's: any key of that organisation stops or replays it, whichever key made it, and
# every key of another organisation, registry administrators included, gets 404 --

OWN_KEYS = frozenset(label(role, "own") for role in Role)
OTHER_KEYS = frozenset(label(role, "other") for role in Role)
SUBSCRIPTIONS = Rows("webhook_subscriptions", "subscription_id")
SUBSCRIPTION_ID = re.compile(r"wh_[0-9a-f]{16}")
NOT_LILLES = Hidden(
    OTHER_KEYS, lambda path: SUBSCRIPTION_ID.sub(f"wh_{secrets.token_hex(8)}", path)
)


def _hook(n: int) -> Body:
    # a name, not an address: checked when resolved, at delivery (no worker runs here)
    return {"url": f"https://hooks.lille.example/{n}", "description": f"matrix {n}"}


async def _on_subscription(s: Setup, n: int, action: str) -> str:
    # made by lille's logistics desk: the callers are other keys, of every role
    made = await s.ok("/v1/webhooks", _hook(n), org=OWN, role=Role.LOGISTICS)
    return f"/v1/webhooks/{made['subscription_id']}{action}"


async def _delete_hook(s: Setup, n: int) -> Target:
    return await _on_subscription(s, n, ""), None


async def _replay_hook(s: Setup, n: int) -> Target:
    return await _on_subscription(s, n, "/replay"), {"from_position": 1}


WEBHOOKS = {
    "POST /v1/webhooks": Case(
        OWN_KEYS | OTHER_KEYS, plain("/v1/webhooks", _hook), rows=SUBSCRIPTIONS
    ),
    "DELETE /v1/webhooks/{subscription_id}": Case(
        OWN_KEYS, _delete_hook, rows=SUBSCRIPTIONS, hidden=NOT_LILLES
    ),
    "POST /v1/webhooks/{subscription_id}/replay": Case(
        OWN_KEYS, _replay_hook, rows=SUBSCRIPTIONS, hidden=NOT_LILLES
    ),
}


# -- personal data (shared/privacy_routes.py), the same in every service: the organisation that
# recorded a person (its member, logistics or org_admin keys) and registry administrators erase
# them; to every other key the person does not exist (404). Searching is a read: a recorder of
# another organisation finds only the people its own organisation recorded --

RECORDERS = frozenset({MEMBER, LOGISTICS, ORG_ADMIN})
OTHER_RECORDERS = frozenset(
    label(r, "other") for r in (Role.MEMBER, Role.LOGISTICS, Role.ORG_ADMIN)
)
SUBJECT_ID = re.compile(r"[a-z]+-[0-9a-f]{32}")


async def _erasure(s: Setup, n: int) -> Target:
    """A person lille recorded (sealed as the write routes seal them), to erase."""
    conn = await asyncpg.connect(s.url)
    try:
        sealed = await privacy.seal_person(
            conn,
            {"name": f"Person {n}", "phone": f"+33 3 20 00 {n:04d}"},
            service="matrix",
            organisation=OWN,
            personal=("name", "phone"),
            now=NOW,
        )
    finally:
        await conn.close()
    return f"/v1/privacy/subjects/{sealed['subject_id']}/erasure", {"legal_basis": "gdpr-art-17"}


PRIVACY = {
    "POST /v1/privacy/subjects/search": Case(
        may(RECORDERS, OTHER_RECORDERS, ADMINS),
        plain("/v1/privacy/subjects/search", lambda n: {"name": f"Person {n}"}),
        read=True,
    ),
    "POST /v1/privacy/subjects/{subject_id}/erasure": Case(
        may(RECORDERS, ADMINS),
        _erasure,
        hidden=Hidden(
            (OWN_KEYS | OTHER_KEYS) - RECORDERS - ADMINS,
            lambda path: SUBJECT_ID.sub(f"matrix-{secrets.token_hex(16)}", path),
        ),
    ),
}


# -- registry: administrators register and correct; members act for their own organisation --


async def _proposed(s: Setup, n: int) -> str:
    pid = f"tw-{n}"
    await s.ok(
        "/v1/partnerships",
        {"partnership_id": pid, "organisations": [OWN, PARTNER], "kind": "twinning"},
        org=OWN,
        role=Role.MEMBER,
    )
    return pid


async def _transition(s: Setup, n: int) -> Target:
    return f"/v1/partnerships/{await _proposed(s, n)}/transitions", {"to": "under_discussion"}


REGISTRY = {
    "POST /v1/audit/verify": VERIFY,
    **WEBHOOKS,
    **PRIVACY,
    "POST /v1/organisations": Case(
        ADMINS,
        plain(
            "/v1/organisations",
            lambda n: {
                "organisation_id": f"org-{n}",
                "name": f"Organisation {n}",
                "kind": "municipality",
                "country": "FR",
            },
        ),
    ),
    "POST /v1/organisations/{organisation_id}/rename": Case(
        ADMINS, plain(f"/v1/organisations/{OWN}/rename", lambda n: {"name": f"Lille {n}"})
    ),
    "POST /v1/organisations/{organisation_id}/aliases": Case(
        ADMINS, plain(f"/v1/organisations/{OWN}/aliases", lambda n: {"alias": f"Rijsel {n}"})
    ),
    "POST /v1/organisations/{organisation_id}/corrections": Case(
        ADMINS,
        plain(
            f"/v1/organisations/{OWN}/corrections",
            lambda n: {"region": f"Hauts-de-France {n}", "reason": "the region was mistyped"},
        ),
    ),
    "PUT /v1/organisations/{organisation_id}/contacts": Case(
        may(MEMBER, ADMINS),
        plain(
            f"/v1/organisations/{OWN}/contacts",
            lambda n: {"contacts": [{"role": "international relations", "name": f"Desk {n}"}]},
        ),
    ),
    "POST /v1/partnerships": Case(
        may(MEMBER, ADMINS),
        plain(
            "/v1/partnerships",
            lambda n: {
                "partnership_id": f"tw-{n}",
                "organisations": [OWN, PARTNER],
                "kind": "twinning",
                "occurred_at": _ago(400),
            },
        ),
    ),
    "POST /v1/partnerships/{partnership_id}/transitions": Case(may(MEMBER, ADMINS), _transition),
    # an organisation's keys: its own org_admin, and registry administrators (issue 21)
    "POST /v1/organisations/{organisation_id}/api-keys": Case(
        may(ORG_ADMIN, ADMINS),
        plain(
            f"/v1/organisations/{OWN}/api-keys", lambda n: {"roles": ["member"], "label": f"k{n}"}
        ),
    ),
    "POST /v1/organisations/{organisation_id}/api-keys/{key_id}/rotate": Case(
        may(ORG_ADMIN, ADMINS), lambda s, n: _key_action(s, n, "rotate")
    ),
    "POST /v1/organisations/{organisation_id}/api-keys/{key_id}/revoke": Case(
        may(ORG_ADMIN, ADMINS), lambda s, n: _key_action(s, n, "revoke")
    ),
    # the workers of pledges and shipments report their keys' last uses: service keys only,
    # and no event (a use changes nothing in the domain)
    "POST /v1/api-key-uses": Case(
        may(label(Role.SERVICE, "own"), label(Role.SERVICE, "other")),
        plain(
            "/v1/api-key-uses",
            lambda n: {
                "service": "pledges",
                "uses": [{"key_id": f"{n:x}", "last_used_at": _ago(0)}],
            },
        ),
        read=True,
    ),
}


async def _key_action(s: Setup, n: int, action: str) -> Target:
    made = await s.ok(
        f"/v1/organisations/{OWN}/api-keys",
        {"roles": ["member"], "label": f"to {action} {n}"},
        org=OWN,
        role=Role.REGISTRY_ADMIN,
    )
    return f"/v1/organisations/{OWN}/api-keys/{made['key_id']}/{action}", {}


async def _registry_world(s: Setup) -> None:
    for org, name, country in (
        (OWN, "Lille", "FR"),
        (OTHER, "Leeds", "GB"),
        (PARTNER, "Kyiv", "UA"),
    ):
        await s.ok(
            "/v1/organisations",
            {"organisation_id": org, "name": name, "kind": "municipality", "country": country},
            org=OWN,
            role=Role.REGISTRY_ADMIN,
        )


# -- pledges: members for their own organisation (recipient of needs, donor of pledges,
# recipient for money received), administrators for anyone --

GOODS = {
    "line_id": "goods",
    "kind": "in_kind",
    "item": "Boxes of medicines",
    "category": "medicines",
    "quantity": "40",
    "unit": "boxes",
}
MONEY = {
    "line_id": "money",
    "kind": "money",
    "item": "Donation call",
    "category": "medicines",
    "amount": 10_000_000,
    "currency": "EUR",
}


def _need(n: int) -> Body:
    return {
        "need_id": f"need-{n}",
        "recipient_id": OWN,
        "kind": "item",
        "category": "medicines",
        "description": "Antibiotics for the hospitals",
        "quantity": "40",
        "unit": "boxes",
        "priority": "high",
        "serves": ["hospitals"],
    }


def _pledge(n: int, *, donor: str = OWN, recipient: str = PARTNER, line: Body = GOODS) -> Body:
    # made two days ago: money received and the donor's figures, dated YESTERDAY, follow it
    return {
        "pledge_id": f"pl-{n}",
        "donor_id": donor,
        "recipient_id": recipient,
        "lines": [line],
        "occurred_at": _ago(2),
    }


async def _posted_need(s: Setup, n: int) -> str:
    await s.ok("/v1/needs", _need(n), org=OWN, role=Role.MEMBER)
    return f"need-{n}"


async def _made_pledge(s: Setup, n: int) -> str:
    await s.ok("/v1/pledges", _pledge(n), org=OWN, role=Role.MEMBER)
    return f"pl-{n}"


def _on_need(action: str, body: Body) -> Prepare:
    async def prepare(s: Setup, n: int) -> Target:
        return f"/v1/needs/{await _posted_need(s, n)}/{action}", body

    return prepare


def _on_pledge(action: str, body: Body) -> Prepare:
    async def prepare(s: Setup, n: int) -> Target:
        return f"/v1/pledges/{await _made_pledge(s, n)}/{action}", body

    return prepare


async def _receipt(s: Setup, n: int) -> Target:
    # a committed money pledge to lille: the recipient confirms what arrived
    committed = {**_pledge(n, donor=PARTNER, recipient=OWN, line=MONEY), "commit": True}
    await s.ok("/v1/pledges", committed, org=PARTNER, role=Role.MEMBER)
    body = {"amount": 500_000, "currency": "EUR", "received_on": YESTERDAY, "reference": f"r{n}"}
    return f"/v1/pledges/pl-{n}/lines/money/receipts", body


PLEDGES_MAY = may(MEMBER, ADMINS)
PLEDGES = {
    "POST /v1/audit/verify": VERIFY,
    **WEBHOOKS,
    **PRIVACY,
    "POST /v1/needs": Case(PLEDGES_MAY, plain("/v1/needs", _need)),
    "POST /v1/needs/{need_id}/revisions": Case(
        PLEDGES_MAY, _on_need("revisions", {"quantity": "60", "reason": "a second hospital"})
    ),
    "POST /v1/needs/{need_id}/close": Case(PLEDGES_MAY, _on_need("close", {"reason": "covered"})),
    "POST /v1/needs/{need_id}/cancel": Case(
        PLEDGES_MAY, _on_need("cancel", {"reason": "no longer needed"})
    ),
    "POST /v1/pledges": Case(PLEDGES_MAY, plain("/v1/pledges", _pledge)),
    "POST /v1/pledges/{pledge_id}/commit": Case(PLEDGES_MAY, _on_pledge("commit", {})),
    "POST /v1/pledges/{pledge_id}/withdraw": Case(
        PLEDGES_MAY, _on_pledge("withdraw", {"reason": "stock went elsewhere"})
    ),
    "POST /v1/pledges/{pledge_id}/lines/{line_id}/amendments": Case(
        PLEDGES_MAY, _on_pledge("lines/goods/amendments", {"quantity": "30", "reason": "fewer"})
    ),
    "POST /v1/pledges/{pledge_id}/lines/{line_id}/receipts": Case(PLEDGES_MAY, _receipt),
    "POST /v1/pledges/{pledge_id}/lines/{line_id}/donor-figures": Case(
        PLEDGES_MAY,
        _on_pledge("lines/goods/donor-figures", {"quantity": "10", "reported_on": YESTERDAY}),
    ),
}


# -- shipments (services/shipments/auth.py): plan, load, unload, cancel: the logistics role
# of the origin or carrier; road entries: the carrier, or the logistics role of the origin or
# recipient; delivery: the recipient; close: origin or recipient, or the carrier's logistics;
# administrators (operators) anything --

OUTBOUND = ("pl-out", OWN, PARTNER)  # pledge line lille -> kyiv, loaded on lille's convoys
INBOUND = ("pl-in", DONOR, OWN)  # pledge line paris -> lille, loaded on convoys to lille
VEHICLE = "TR-1"


def _convoy(n: int, *, origin: str = OWN, destination: str = PARTNER) -> Body:
    return {
        "convoy_id": f"cv-{n}",
        "reference": f"{origin} to {destination} #{n}",
        "origin_id": origin,
        "destination_id": destination,
        "carrier_id": CARRIER,
        "planned_departure": _ago(3),
        "occurred_at": _ago(4),
        "vehicles": [{"registration": VEHICLE, "type": "truck", "capacity_kg": "20000"}],
        "drivers": [{"name": "Driver", "vehicle": VEHICLE}],
    }


def _load(pledge_id: str) -> Body:
    return {
        "manifest_line_id": "m1",
        "pledge_id": pledge_id,
        "line_id": "goods",
        "quantity": "10",
        "vehicle": VEHICLE,
        "occurred_at": _ago(3.5),
    }


ROAD = [
    {"entry_id": "dispatch", "kind": "dispatch", "occurred_at": _ago(3)},
    {"entry_id": "arrival", "kind": "arrival", "occurred_at": _ago(2)},
]
DELIVERY = {
    "receiver": {"name": "Warehouse lead", "role": "warehouse"},
    "lines": [{"manifest_line_id": "m1", "received": "10"}],
    "occurred_at": _ago(1),
}


async def _convoy_at(s: Setup, n: int, stage: str, *, inbound: bool = False) -> str:
    """A fresh convoy (lille -> kyiv, or paris -> lille) taken up to `stage`: planned, loaded,
    arrived or delivered, each step by the party that does it."""
    pledge_id, origin, destination = INBOUND if inbound else OUTBOUND
    convoy = f"/v1/convoys/cv-{n}"
    await s.ok(
        "/v1/convoys",
        _convoy(n, origin=origin, destination=destination),
        org=origin,
        role=Role.LOGISTICS,
    )
    if stage in ("loaded", "arrived", "delivered"):
        await s.ok(f"{convoy}/manifest", _load(pledge_id), org=origin, role=Role.LOGISTICS)
    if stage in ("arrived", "delivered"):
        await s.ok(f"{convoy}/entries", {"entries": ROAD}, org=CARRIER, role=Role.LOGISTICS)
    if stage == "delivered":
        await s.ok(f"{convoy}/delivery", DELIVERY, org=destination, role=Role.MEMBER)
    return convoy


def _on_convoy(stage: str, action: str, body: Body, *, inbound: bool = False) -> Prepare:
    async def prepare(s: Setup, n: int) -> Target:
        return f"{await _convoy_at(s, n, stage, inbound=inbound)}/{action}", body

    return prepare


PLANNERS = may(LOGISTICS, ADMINS)
SHIPMENTS = {
    "POST /v1/audit/verify": VERIFY,
    **WEBHOOKS,
    **PRIVACY,
    "POST /v1/convoys": Case(PLANNERS, plain("/v1/convoys", _convoy)),
    "POST /v1/convoys/{convoy_id}/manifest": Case(
        PLANNERS, _on_convoy("planned", "manifest", _load(OUTBOUND[0]))
    ),
    "POST /v1/convoys/{convoy_id}/manifest/{manifest_line_id}/unload": Case(
        PLANNERS, _on_convoy("loaded", "manifest/m1/unload", {"reason": "not needed"})
    ),
    "POST /v1/convoys/{convoy_id}/cancel": Case(
        PLANNERS, _on_convoy("loaded", "cancel", {"reason": "the road is closed"})
    ),
    # lille is the origin, not the carrier: its members may not record road events
    "POST /v1/convoys/{convoy_id}/entries": Case(
        may(LOGISTICS, ADMINS), _on_convoy("loaded", "entries", {"entries": ROAD[:1]})
    ),
    "POST /v1/convoys/{convoy_id}/delivery": Case(
        may(MEMBER, LOGISTICS, ADMINS), _on_convoy("arrived", "delivery", DELIVERY, inbound=True)
    ),
    "POST /v1/convoys/{convoy_id}/close": Case(
        may(MEMBER, LOGISTICS, ADMINS), _on_convoy("delivered", "close", {"note": "all in"})
    ),
}

CASES: dict[str, dict[str, Case]] = {
    "registry": REGISTRY,
    "pledges": PLEDGES,
    "shipments": SHIPMENTS,
}


async def _feed(
    conn: asyncpg.Connection, handler: Handler, event_type: str, position: int, data: Body
) -> None:
    """Apply an upstream event with the service's own consumer handler, as its worker would."""
    await handler(
        conn,
        Incoming(
            upstream="test",
            event_id=uuid.uuid4(),
            position=position,
            event_type=event_type,
            stream_id="",
            stream_version=1,
            occurred_at=NOW - timedelta(days=30),
            data=data,
            correlation_id=None,
            organisation=None,
        ),
    )


async def _seed(service: str, url: str) -> None:
    """What pledges and shipments learn from other services' events: the registry's
    organisations (their directory) and, for shipments, the committed pledge lines."""
    if service == "registry":
        return
    conn = await asyncpg.connect(url)
    try:
        for n, org in enumerate((OWN, OTHER, PARTNER, DONOR, CARRIER), 1):
            data = {"organisation_id": org, "name": org.title(), "kind": "municipality"}
            await _feed(
                conn,
                directory.registered,
                "registry.organisation-registered",
                n,
                {**data, "country": "FR"},
            )
        if service == "shipments":
            for n, (pledge_id, donor, recipient) in enumerate((OUTBOUND, INBOUND), 10):
                line = {
                    "pledge_id": pledge_id,
                    "line_id": "goods",
                    "donor_id": donor,
                    "recipient_id": recipient,
                    "item": "Boxes of medicines",
                    "unit": "boxes",
                    "quantity": "100000",
                    "weight_kg": "100000",
                    "status": "committed",
                }
                await _feed(
                    conn,
                    subscriptions.pledge_line_updated,
                    "pledges.pledge-line-updated",
                    n,
                    line,
                )
    finally:
        await conn.close()


def write_endpoints(openapi: dict[str, Any]) -> list[str]:
    return [
        f"{method.upper()} {path}"
        for path, ops in openapi["paths"].items()
        for method in ops
        if method in WRITE_METHODS
    ]


def expected(case: Case, who: str) -> str:
    if who in (NO_KEY, REVOKED):
        return "401"
    if who in case.may:
        return "2xx"
    return "404" if case.hidden and who in case.hidden.who else "403"


Cell = dict[str, Any]
Snapshot = dict[str, tuple[str, str, str]]  # row id -> (organisation, key_id, the whole row)


async def _keys(url: str) -> dict[str, str | None]:
    keys: dict[str, str | None] = {NO_KEY: None}
    for role in Role:
        for org, side in ((OWN, "own"), (OTHER, "other")):
            keys[label(role, side)] = await issue_key(url, organisation=org, roles=[role])
    revoked = await issue_key(url, organisation=OWN, roles=list(Role))
    conn = await asyncpg.connect(url)
    try:
        await revoke(conn, key_id=revoked.split("_")[1])
    finally:
        await conn.close()
    keys[REVOKED] = revoked
    return keys


async def _snapshot(conn: asyncpg.Connection, rows: Rows | None) -> Snapshot:
    if rows is None:
        return {}
    found = await conn.fetch(
        f"SELECT {rows.key} AS id, organisation, key_id, to_jsonb(t)::text AS row"
        f" FROM {rows.table} t"
    )
    return {r["id"]: (r["organisation"], r["key_id"], r["row"]) for r in found}


def _changed(before: Snapshot, after: Snapshot) -> list[Body]:
    return [
        {
            "id": rid,
            "organisation": (after.get(rid) or before[rid])[0],
            "key_id": (after.get(rid) or before[rid])[1],
            "new": rid not in before,
        }
        for rid in sorted(before.keys() | after.keys())
        if before.get(rid) != after.get(rid)
    ]


def _answer(response: httpx.Response, ids: list[str]) -> Any:
    """What a refusal says, its ids and correlation id left out: for comparing two."""
    text = response.text
    for rid in ids:
        text = text.replace(rid, "<id>")
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    if isinstance(body, dict):
        body.pop("correlation_id", None)
    return response.status_code, response.headers.get("content-type"), body


async def _call(
    client: httpx.AsyncClient,
    counter: asyncpg.Connection,
    case: Case,
    method: str,
    target: Target,
    token: str | None,
) -> Cell:
    path, body = target
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    before = await counter.fetchval("SELECT count(*) FROM events")
    stored = await _snapshot(counter, case.rows)
    response = await client.request(method, path, json=body, headers=headers)
    after = await counter.fetchval("SELECT count(*) FROM events")
    changed = _changed(stored, await _snapshot(counter, case.rows))
    as_absent = None
    if case.hidden is not None and response.status_code == 404:
        twin = case.hidden.absent(path)
        ids = [
            p
            for a, b in zip(path.split("/"), twin.split("/"), strict=True)
            if a != b
            for p in (a, b)
        ]
        absent = await client.request(method, twin, json=body, headers=headers)
        as_absent = _answer(response, ids) == _answer(absent, ids)
    return {
        "path": path,
        "status": response.status_code,
        "events_added": after - before,
        "rows": case.rows is not None,
        "rows_changed": changed,
        "as_absent": as_absent,
        "problem_json": response.headers.get("content-type") == "application/problem+json",
        "detail": response.text[:300] if response.is_error else "",
    }


async def _matrix(service: str, pg_server: str) -> list[Cell]:
    create_app = import_module(f"services.{service}.app").create_app
    cases = CASES[service]
    cells: list[Cell] = []
    async with fresh_database(pg_server) as url:
        app = create_app(settings_for(url, rate_limit_per_second=0))
        async with app.router.lifespan_context(app):
            endpoints = write_endpoints(app.openapi())
            assert sorted(endpoints) == sorted(cases), (
                f"{service}: every write endpoint needs a Case (its policy) here, and only those"
            )
            await _seed(service, url)
            keys = await _keys(url)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            counter = await asyncpg.connect(url)
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    setup = Setup(client, url)
                    if service == "registry":
                        await _registry_world(setup)
                    n = 0
                    for endpoint in endpoints:
                        case = cases[endpoint]
                        method = endpoint.split(" ")[0]
                        for who, token in keys.items():
                            n += 1
                            target = await case.prepare(setup, n)
                            cell = await _call(client, counter, case, method, target, token)
                            cells.append(
                                {
                                    "service": service,
                                    "endpoint": endpoint,
                                    "who": who,
                                    "org": OTHER if who.endswith("(other)") else OWN,
                                    "key_id": token.split("_")[1] if token else None,
                                    "expected": expected(case, who),
                                    "read": case.read,
                                    **cell,
                                }
                            )
            finally:
                await counter.close()
    return cells


def _stored_wrong(c: Cell) -> str | None:
    """Why an accepted row write did not change exactly its own row, or None."""
    changed = c["rows_changed"]
    if len(changed) != 1:
        return f"changed {len(changed)} rows, not 1"
    row = changed[0]
    if row["organisation"] != c["org"]:
        return f"changed a row of {row['organisation']}"
    if row["new"] and row["key_id"] != c["key_id"]:
        return "stored a row bound to another key"
    if not row["new"] and row["id"] not in c["path"].split("/"):
        return f"changed {row['id']}, which its path does not name"
    return None


def violations(cells: list[Cell]) -> list[str]:
    found = []
    for c in cells:
        status, grew, changed = c["status"], c["events_added"], c["rows_changed"]
        where = f"{c['service']} {c['endpoint']} as {c['who']}: {status}"
        if grew:
            where += f" +{grew}"
        if c["expected"] == "2xx":
            if not 200 <= status < 300:
                found.append(f"{where} (expected 2xx: {c['detail']})")
            elif (c["read"] or c["rows"]) and grew:
                found.append(f"{where} (appended events: it may not)")
            elif c["rows"] and (wrong := _stored_wrong(c)):
                found.append(f"{where} ({wrong})")
            elif not c["read"] and not c["rows"] and not grew:
                found.append(f"{where} (accepted but appended nothing)")
        elif status != int(c["expected"]):
            found.append(f"{where} (expected {c['expected']}: {c['detail']})")
        elif grew or changed:
            found.append(f"{where} (refused but stored {grew} event(s), {len(changed)} row(s))")
        elif c["expected"] == "404" and not c["as_absent"]:
            found.append(f"{where} (not the answer a target that does not exist gets)")
        if status >= 400 and not c["problem_json"]:
            found.append(f"{where} (not problem+json)")
    return found


def figures(cells: list[Cell]) -> dict[str, Any]:
    ok = [c for c in cells if 200 <= c["status"] < 300]
    hidden = [c for c in cells if c["status"] == 404 and c["expected"] == "404"]
    return {
        "endpoints": len({(c["service"], c["endpoint"]) for c in cells}),
        "calls": len(cells),
        "accepted": len(ok),
        "accepted_writes": sum(1 for c in ok if not c["read"] and not c["rows"]),
        "accepted_row_writes": sum(1 for c in ok if c["rows"]),
        "accepted_reads": sum(1 for c in ok if c["read"]),
        "refused_403": sum(1 for c in cells if c["status"] == 403),
        "not_visible_404": len(hidden),
        "refused_401": sum(1 for c in cells if c["status"] == 401),
        "other": sum(
            1
            for c in cells
            if not 200 <= c["status"] < 300 and c["status"] not in (401, 403) and c not in hidden
        ),
        "violations": violations(cells),
    }


def _mark(c: Cell) -> str:
    mark = f"{c['status']}" + (f" +{c['events_added']}" if c["events_added"] else "")
    if c["rows_changed"]:
        mark += f" r{len(c['rows_changed'])}"
    return f"**{mark}**" if c["expected"] == "2xx" else mark


def as_markdown(cells: list[Cell]) -> str:
    who = list(dict.fromkeys(c["who"] for c in cells))
    lines = [
        "# Authorization matrix",
        "",
        "Every write endpoint (from each service's OpenAPI) called for the acting organisation",
        f"`{OWN}` by a key of `{OWN}` (own) or of `{OTHER}` (other, a party to nothing) for each",
        "role, with no key and with a revoked key. Each call gets a valid body and a target that",
        "exists, in a state where the action is allowed, made beforehand through the API (fresh",
        "per call): a refusal can only come from authorization. Each cell is the HTTP status;",
        "`+n` marks n events appended, `rn` n rows stored or changed; **bold** marks the callers",
        "the policy in tests/proof/test_authorization_matrix.py allows (2xx expected, events",
        "appended; `POST /v1/audit/verify` is a read for auditors); every other key must get 403",
        "and no key or a revoked key 401, appending nothing.",
        "",
        "Webhook subscriptions (`/v1/webhooks`, in every service) are rows of",
        "`webhook_subscriptions`, not events: their writes must append nothing, and an accepted",
        "one changes exactly one row, of the caller's organisation (a new one bound to the calling",
        "key, or the subscription its path names); a refused one changes none. Any valid key",
        "subscribes, for its own organisation (the request names none: a key of",
        f"`{OTHER}` subscribes `{OTHER}`). A subscription (made here by a `{OWN}` logistics key)",
        f"is stopped or replayed by any key of `{OWN}`; to every key of another organisation,",
        "registry administrators included, it is not visible: 404, the same answer (type, title,",
        "detail) as for a subscription id that does not exist.",
        "",
        f"Personal data (`/v1/privacy`, in every service): a person `{OWN}` recorded is erased by",
        f"`{OWN}`'s member, logistics and org_admin keys and by registry administrators (one",
        "`privacy.subject-erased` event); to every other key the person does not exist (404, as",
        "for a subject id never made). A search is a read for those keys of either organisation",
        "(each finds only the people its own organisation recorded).",
        "",
        "`!` marks a cell that differs from the policy. Generated by",
        "tests/proof/test_authorization_matrix.py.",
        "",
        "| service | endpoint | " + " | ".join(who) + " |",
        "|---|---|" + "---|" * len(who),
    ]
    bad = {(c["service"], c["endpoint"], c["who"]) for c in cells if violations([c])}
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for c in cells:
        mark = _mark(c)
        if (c["service"], c["endpoint"], c["who"]) in bad:
            mark += " !"
        rows.setdefault((c["service"], c["endpoint"]), {})[c["who"]] = mark
    for (service, endpoint), row in rows.items():
        lines.append(
            f"| {service} | `{endpoint}` | " + " | ".join(row.get(w, "") for w in who) + " |"
        )
    f = figures(cells)
    lines += [
        "",
        f"{f['endpoints']} write endpoints, {f['calls']} calls: {f['accepted']} accepted"
        f" ({f['accepted_writes']} writes appending events, {f['accepted_row_writes']} webhook"
        f" writes storing their row only, {f['accepted_reads']} audit reads and key-use reports),"
        f" {f['refused_403']} refused with 403, {f['not_visible_404']} with 404 (not visible),"
        f" {f['refused_401']} with 401, {f['other']} other answers,"
        f" {len(f['violations'])} violations.",
        "",
    ]
    lines += [f"- {v}" for v in f["violations"]]
    return "\n".join(lines) + ("\n" if f["violations"] else "")


@pytest.mark.once
async def test_every_write_is_accepted_exactly_from_the_callers_its_policy_names(
    pg_server: str,
) -> None:
    cells: list[Cell] = []
    for service in SERVICES:
        cells += await _matrix(service, pg_server)
    table = as_markdown(cells)
    print("\n" + table)
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "authorization-matrix.md").write_text(table)
    OUT.mkdir(parents=True, exist_ok=True)
    found = figures(cells)
    (OUT / "authorization.json").write_text(json.dumps(found, indent=2))
    assert {c["service"] for c in cells} == set(SERVICES)
    assert found["violations"] == [], "\n".join(found["violations"])
