"""Every write endpoint x role x own/other organisation x missing/revoked key: what is accepted.

The write endpoints are read from each app's OpenAPI (POST/PUT/PATCH/DELETE). Each is called
with a valid-looking body acting for organisation `lille`, by a key of `lille` (own) and of
`leeds` (other) for every role, with no key and with a revoked key. A refused call must not add
an event; a missing or revoked key is a 401; auditors and service keys never write. The table
is printed (pytest -s) and written to docs/proof/authorization-matrix.md.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.auth import Role, revoke
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for

SERVICES = ["registry", "pledges", "shipments"]
OWN, OTHER = "lille", "leeds"
DOCS = Path(os.environ.get("TWINAID_PROOF_DOCS", "docs/proof"))
OUT = Path(os.environ.get("TWINAID_PROOF_OUT", ".data/proof"))
WRITE_METHODS = {"post", "put", "patch", "delete"}
NEVER_WRITE = {Role.AUDITOR, Role.SERVICE}


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


# valid bodies (the load generator's) acting for `lille`; anything else gets `{}`
BODIES: dict[str, dict[str, Any]] = {
    "/v1/organisations": {
        "organisation_id": "new-org",
        "name": "New Org",
        "kind": "municipality",
        "country": "UA",
    },
    "/v1/partnerships": {
        "partnership_id": "tw-1",
        "organisations": [OWN, "kyiv"],
        "kind": "twinning",
        "occurred_at": _ago(400),
    },
    "/v1/organisations/{organisation_id}/rename": {"name": "Lille Métropole"},
    "/v1/organisations/{organisation_id}/aliases": {"alias": "Rijsel"},
    "/v1/needs": {
        "need_id": "need-1",
        "kind": "item",
        "category": "medicines",
        "description": "Supplies",
        "quantity": "40",
        "unit": "boxes",
        "priority": "high",
        "serves": ["hospitals"],
    },
    "/v1/pledges": {
        "pledge_id": "pl-1",
        "donor_id": OWN,
        "recipient_id": "kyiv",
        "partnership_id": "tw-1",
        "lines": [
            {
                "line_id": "goods",
                "kind": "in_kind",
                "item": "Boxes",
                "category": "medicines",
                "quantity": "40",
                "unit": "boxes",
            }
        ],
    },
    "/v1/convoys": {
        "convoy_id": "cv-1",
        "reference": "lille to kyiv",
        "origin_id": OWN,
        "destination_id": "kyiv",
        "carrier_id": OWN,
        "planned_departure": _ago(3),
        "occurred_at": _ago(4),
        "vehicles": [{"registration": "TR-1", "type": "truck", "capacity_kg": "20000"}],
        "drivers": [{"name": "Driver", "vehicle": "TR-1"}],
    },
    "/v1/pledges/{pledge_id}/lines/{line_id}/amendments": {"quantity": "30", "reason": "fewer"},
    "/v1/convoys/{convoy_id}/entries": {
        "entries": [{"entry_id": "e1", "kind": "dispatch", "occurred_at": _ago(3)}]
    },
}
PATH_VALUES = {
    "organisation_id": OWN,
    "partnership_id": "tw-1",
    "need_id": "need-1",
    "pledge_id": "pl-1",
    "line_id": "goods",
    "convoy_id": "cv-1",
    "manifest_line_id": "m1",
}


def write_endpoints(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, ops in openapi["paths"].items()
        for method in ops
        if method in WRITE_METHODS
    ]


async def count_events(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def _seed_directory(url: str) -> None:
    """The organisations the pledges and shipments services know (their registry feed)."""
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT to_regclass('directory') IS NOT NULL"):
            for n, slug in enumerate((OWN, OTHER, "kyiv"), 1):
                await conn.execute(
                    "INSERT INTO directory (organisation_id, name, kind, country, aliases,"
                    " source_position) VALUES ($1, $2, 'municipality', 'FR', '{}', $3)"
                    " ON CONFLICT DO NOTHING",
                    slug,
                    slug.title(),
                    n,
                )
    except asyncpg.PostgresError:
        pass  # a differently shaped directory: the creates then answer 4xx, still recorded
    finally:
        await conn.close()


Cell = dict[str, Any]


async def _matrix(service: str, pg_server: str) -> list[Cell]:
    create_app = import_module(f"services.{service}.app").create_app
    cells: list[Cell] = []
    async with fresh_database(pg_server) as url:
        app = create_app(settings_for(url, rate_limit_per_second=0))
        async with app.router.lifespan_context(app):
            await _seed_directory(url)
            keys: dict[str, str | None] = {"no key": None}
            for role in Role:
                for org, label in ((OWN, "own"), (OTHER, "other")):
                    keys[f"{role.value} ({label})"] = await issue_key(
                        url, organisation=org, roles=[role]
                    )
            revoked = await issue_key(url, organisation=OWN, roles=list(Role))
            conn = await asyncpg.connect(url)
            try:
                await revoke(conn, key_id=revoked.split("_")[1])
            finally:
                await conn.close()
            keys["revoked key"] = revoked
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for method, template in write_endpoints(app.openapi()):
                    path = template.format(**PATH_VALUES)
                    body = BODIES.get(template, {})
                    for who, token in keys.items():
                        headers = {"Authorization": f"Bearer {token}"} if token else {}
                        before = await count_events(url)
                        response = await client.request(method, path, json=body, headers=headers)
                        grew = await count_events(url) - before
                        cells.append(
                            {
                                "service": service,
                                "endpoint": f"{method} {template}",
                                "who": who,
                                "status": response.status_code,
                                "events_added": grew,
                                "problem_json": response.headers.get("content-type")
                                == "application/problem+json",
                            }
                        )
    return cells


def violations(cells: list[Cell]) -> list[str]:
    found = []
    for c in cells:
        accepted = 200 <= c["status"] < 300
        where = f"{c['service']} {c['endpoint']} as {c['who']}: {c['status']}"
        role = c["who"].split(" ")[0]
        if not accepted and c["events_added"]:
            found.append(f"{where} refused but appended {c['events_added']} event(s)")
        if c["who"] in ("no key", "revoked key") and c["status"] != 401:
            found.append(f"{where} (expected 401)")
        if role in {r.value for r in NEVER_WRITE} and accepted:
            found.append(f"{where} (auditors and services never write)")
        if c["who"].endswith("(other)") and accepted and role != Role.REGISTRY_ADMIN.value:
            found.append(f"{where} (acted for {OWN} from {OTHER})")
        if c["status"] >= 500:
            found.append(f"{where} (a 5xx)")
        if c["status"] >= 400 and not c["problem_json"]:
            found.append(f"{where} (not problem+json)")
    return found


def as_markdown(cells: list[Cell]) -> str:
    who = list(dict.fromkeys(c["who"] for c in cells))
    lines = [
        "# Authorization matrix",
        "",
        "Every write endpoint (from each service's OpenAPI) called by a key of the acting",
        f"organisation (`{OWN}`, own) or of another (`{OTHER}`, other) for each role, with no",
        "key and with a revoked key. Each cell is the HTTP status; `+n` marks n events appended.",
        "2xx only where the role may write; 404/409/422 mean the key got past authorization",
        "and the target or body was refused; nothing refused appended an event.",
        "Generated by tests/proof/test_authorization_matrix.py.",
        "",
        "| service | endpoint | " + " | ".join(who) + " |",
        "|---|---|" + "---|" * len(who),
    ]
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for c in cells:
        mark = f"{c['status']}" + (f" +{c['events_added']}" if c["events_added"] else "")
        rows.setdefault((c["service"], c["endpoint"]), {})[c["who"]] = mark
    for (service, endpoint), row in rows.items():
        lines.append(
            f"| {service} | `{endpoint}` | " + " | ".join(row.get(w, "") for w in who) + " |"
        )
    refused = sum(1 for c in cells if not 200 <= c["status"] < 300)
    lines += [
        "",
        f"{len(rows)} write endpoints, {len(cells)} calls: {len(cells) - refused} accepted,"
        f" {refused} refused, {len(violations(cells))} violations.",
        "",
    ]
    return "\n".join(lines)


@pytest.mark.once
async def test_no_write_is_accepted_from_a_key_that_may_not_make_it(pg_server: str) -> None:
    cells: list[Cell] = []
    for service in SERVICES:
        cells += await _matrix(service, pg_server)
    table = as_markdown(cells)
    print("\n" + table)
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "authorization-matrix.md").write_text(table)
    OUT.mkdir(parents=True, exist_ok=True)
    found = violations(cells)
    (OUT / "authorization.json").write_text(
        json.dumps(
            {
                "endpoints": len({(c["service"], c["endpoint"]) for c in cells}),
                "calls": len(cells),
                "accepted": sum(1 for c in cells if 200 <= c["status"] < 300),
                "violations": found,
            },
            indent=2,
        )
    )
    assert {c["service"] for c in cells} == set(SERVICES)
    assert any(200 <= c["status"] < 300 for c in cells), "no write got through at all"
    assert found == [], "\n".join(found)
