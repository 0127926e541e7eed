"""A partner city's developer generates a Python client from each service's OpenAPI document
(openapi-python-client, pinned) and uses it: against the pledges API in process on real
PostgreSQL, a pledge is made, a retry with the same Idempotency-Key is answered the same and
stores nothing twice, a conflict (409) and a validation error (422) arrive as the Problem model,
and an update with a stale ETag in If-Match is refused (412) while the current one is taken."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared import db as dbmod
from shared import directory
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.pledges.conftest import seed_registry

pytestmark = pytest.mark.once

APPS = {"registry": registry_app, "pledges": pledges_app, "shipments": shipments_app}
# no formatting pass over the output (speed); the IATI export's XML arrives as bytes (the
# generator parses JSON, text and files, not XML)
CONFIG = "post_hooks: []\ncontent_type_overrides:\n  application/xml: application/octet-stream\n"
# what a partner calls first, as the generator names it from the operationIds
EXPECTED = {
    "registry": ["organisations.register_organisation", "partnerships.propose_partnership"],
    "pledges": ["pledges.make_pledge", "pledges.commit_pledge", "needs.post_need"],
    "shipments": ["convoys.plan_convoy", "convoys.load_manifest_line", "tracking.get_convoy"],
}


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """Each service's client package, generated once from its document."""
    out = tmp_path_factory.mktemp("clients")
    settings = settings_for("postgresql://nobody@127.0.0.1:1/unused", "kafka.example:9092")
    (out / "config.yaml").write_text(CONFIG)
    generator = Path(sys.executable).parent / "openapi-python-client"
    for service, create in APPS.items():
        document = out / f"{service}.json"
        document.write_text(json.dumps(create(settings).openapi()))
        run = subprocess.run(
            [
                str(generator),
                "generate",
                "--path",
                str(document),
                "--output-path",
                str(out / f"{service}_client"),
                "--meta",
                "none",
                "--config",
                str(out / "config.yaml"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        # the generator warns about what it could not type; there must be nothing of that
        assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(out))
    try:
        yield {s: importlib.import_module(f"{s}_client") for s in APPS}
    finally:
        sys.path.remove(str(out))


def test_every_client_names_its_operations_after_the_operation_ids(
    clients: dict[str, ModuleType],
) -> None:
    for service, names in EXPECTED.items():
        for name in names:
            module = importlib.import_module(f"{service}_client.api.{name}")
            assert hasattr(module, "asyncio_detailed"), name
    # no FastAPI-style names (`register_organisation_v1_organisations_post`) anywhere
    for service in APPS:
        package = Path(clients[service].__file__).parent / "api"
        long = [p.stem for p in package.rglob("*.py") if p.stem.endswith(("_get", "_post"))]
        assert long == [], long


class Partner:
    """The pledges client as Lille's software holds it, talking to the app in process."""

    def __init__(self, module: ModuleType, app: FastAPI, key: str) -> None:
        self.module = module
        self.client = module.AuthenticatedClient(base_url="http://pledges", token=key)
        self.client.set_async_httpx_client(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://pledges",
                headers={"Authorization": f"Bearer {key}"},
            )
        )

    def api(self, name: str) -> Any:
        return importlib.import_module(f"{self.module.__name__}.api.{name}")

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{self.module.__name__}.models"), name)


@pytest.fixture
async def partner(
    clients: dict[str, ModuleType], pg_server: str
) -> AsyncIterator[tuple[Partner, str]]:
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")
    ) as url:
        app = pledges_app(settings_for(url, rate_limit_per_second=0))
        async with app.router.lifespan_context(app):
            await seed_registry(url)
            key = await issue_key(url, organisation="lille", roles=[Role.MEMBER])
            partner = Partner(clients["pledges"], app, key)
            try:
                yield partner, url
            finally:
                await partner.client.get_async_httpx_client().aclose()


PLEDGE = {
    "pledge_id": "lille-kharkiv-generators-2023",
    "recipient_id": "kharkiv",
    "partnership_id": "lille-kharkiv-twinning",
    "description": "Generators bought on the municipal budget",
    "lines": [
        {
            "line_id": "generators",
            "kind": "in_kind",
            "item": "Medium generator 5 kVA",
            "category": "generators",
            "quantity": "50",
            "unit": "pieces",
            "weight_kg": "4750",
        }
    ],
}


async def _events(url: str, stream_id: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM events WHERE stream_id = $1", stream_id
        )
        return count
    finally:
        await conn.close()


async def test_a_partner_pledges_retries_and_reads_problems_through_the_generated_client(
    partner: tuple[Partner, str],
) -> None:
    lille, url = partner
    make_pledge = lille.api("pledges.make_pledge")
    pledge_in = lille.model("PledgeIn")
    problem = lille.model("Problem")

    first = await make_pledge.asyncio_detailed(
        client=lille.client, body=pledge_in.from_dict(PLEDGE), idempotency_key="lille-2023-03-a"
    )
    assert first.status_code == 201
    assert isinstance(first.parsed, lille.model("PledgeChanged"))
    assert first.parsed.pledge_id == PLEDGE["pledge_id"] and first.parsed.version == 1
    assert first.parsed.status == "pledged"
    assert first.headers["etag"] == '"1"'

    # the answer was lost on the way: the same request again, with the same key
    again = await make_pledge.asyncio_detailed(
        client=lille.client, body=pledge_in.from_dict(PLEDGE), idempotency_key="lille-2023-03-a"
    )
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.parsed.to_dict() == first.parsed.to_dict()
    assert await _events(url, f"pledge-{PLEDGE['pledge_id']}") == 1

    # the same pledge id again without the key: a conflict, as the Problem model
    conflict = await make_pledge.asyncio_detailed(
        client=lille.client, body=pledge_in.from_dict(PLEDGE)
    )
    assert conflict.status_code == 409
    assert isinstance(conflict.parsed, problem)
    assert conflict.parsed.status == 409 and conflict.parsed.type_.endswith("/conflict")
    assert conflict.parsed.detail and conflict.parsed.correlation_id

    # a quantity that is not a number: 422 naming the field, as the Problem model
    bad = json.loads(json.dumps(PLEDGE))
    bad["pledge_id"] = "lille-kharkiv-generators-bad"
    bad["lines"][0]["quantity"] = "fifty"
    invalid = await make_pledge.asyncio_detailed(client=lille.client, body=pledge_in.from_dict(bad))
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, problem)
    assert [p.name for p in invalid.parsed.invalid_params] == ["lines.0.quantity"]
    assert await _events(url, "pledge-lille-kharkiv-generators-bad") == 0

    # read it (typed, with its ETag), then commit it only if nobody changed it since
    read = await lille.api("pledges.get_pledge").asyncio_detailed(
        PLEDGE["pledge_id"], client=lille.client
    )
    assert read.status_code == 200 and isinstance(read.parsed, lille.model("Pledge"))
    assert read.parsed.lines[0].item == "Medium generator 5 kVA"
    assert read.headers["etag"] == '"1"'
    commit = lille.api("pledges.commit_pledge")
    now = lille.model("CommitIn")()  # the body is optional; this generator wants one given
    stale = await commit.asyncio_detailed(
        PLEDGE["pledge_id"], client=lille.client, body=now, if_match='"7"'
    )
    assert stale.status_code == 412 and isinstance(stale.parsed, problem)
    assert stale.parsed.current_version == 1
    done = await commit.asyncio_detailed(
        PLEDGE["pledge_id"], client=lille.client, body=now, if_match=read.headers["etag"]
    )
    assert done.status_code == 200 and done.parsed.status == "committed"
    assert done.parsed.version > 1 and done.headers["etag"] == f'"{done.parsed.version}"'
    # the bare version number keeps working: a stale one refused, the current one taken
    withdraw = lille.api("pledges.withdraw_pledge")
    why = lille.model("EndIn")(reason="the generators went to Bucha instead")
    refused = await withdraw.asyncio_detailed(
        PLEDGE["pledge_id"], client=lille.client, body=why, if_match="1"
    )
    assert refused.status_code == 412 and refused.parsed.current_version == done.parsed.version
    taken = await withdraw.asyncio_detailed(
        PLEDGE["pledge_id"], client=lille.client, body=why, if_match=str(done.parsed.version)
    )
    assert taken.status_code == 200 and taken.parsed.status == "withdrawn"


async def test_every_401_names_the_bearer_scheme(partner: tuple[Partner, str]) -> None:
    lille, _ = partner
    http = lille.client.get_async_httpx_client()
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        answer = await http.get("/v1/pledges", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["content-type"] == "application/problem+json"
