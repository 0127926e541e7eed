"""A partner city's developer generates a Python client from each service's OpenAPI document
(openapi-python-client, pinned) and uses it over HTTP against the three services behind uvicorn
on 127.0.0.1, on real PostgreSQL (the `twinaid` command's tests' stack): through the pledges
client a pledge is made, a retry with the same Idempotency-Key is answered the same and stores
nothing twice, a conflict (409) and a validation error (422) arrive as the Problem model, and an
update with a stale ETag in If-Match is refused (412) while the current one is taken; through
the registry client Lille reads its organisation with its ETag; through the shipments client a
logistics key lists convoys and reads an unknown one as a 404 Problem."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest

from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared.auth import Role
from shared.testing import issue_key
from tests.cli import conftest as served
from tests.cli.conftest import Stack
from tests.conftest import settings_for

pytestmark = pytest.mark.once

# the three APIs behind uvicorn on 127.0.0.1 on fresh databases, Lille, Kharkiv and their
# partnership registered and known to the pledges service (tests/cli/conftest.py)
stack = served.stack

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
    """A generated client as Lille's software holds it, talking HTTP to a running service."""

    def __init__(self, module: ModuleType, base_url: str, key: str) -> None:
        self.module = module
        self.client = module.AuthenticatedClient(base_url=base_url, token=key)

    def api(self, name: str) -> Any:
        return importlib.import_module(f"{self.module.__name__}.api.{name}")

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{self.module.__name__}.models"), name)


@pytest.fixture
async def partner(
    clients: dict[str, ModuleType], stack: Stack
) -> AsyncIterator[tuple[Partner, str]]:
    """The pledges client with a key of Lille's, and the pledges service's database."""
    url = stack.databases["pledges"]
    key = await issue_key(url, organisation="lille", roles=[Role.MEMBER])
    partner = Partner(clients["pledges"], stack.urls["pledges"], key)
    try:
        yield partner, url
    finally:
        await partner.client.get_async_httpx_client().aclose()


PLEDGE = {
    "pledge_id": "lille-kharkiv-generators-2023",
    "recipient_id": "kharkiv",
    "partnership_id": served.PARTNERSHIP["partnership_id"],
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


async def test_lille_reads_its_organisation_through_the_registry_client(
    clients: dict[str, ModuleType], stack: Stack
) -> None:
    lille = Partner(clients["registry"], stack.urls["registry"], stack.member)
    try:
        get_organisation = lille.api("organisations.get_organisation")
        read = await get_organisation.asyncio_detailed("lille", client=lille.client)
        assert read.status_code == 200, read.content
        assert isinstance(read.parsed, lille.model("Organisation"))
        assert read.parsed.organisation_id == "lille" and read.parsed.name == "Lille"
        assert read.headers["etag"] == f'"{read.parsed.version}"'
        unknown = await get_organisation.asyncio_detailed("atlantis", client=lille.client)
        assert unknown.status_code == 404 and isinstance(unknown.parsed, lille.model("Problem"))
        assert unknown.parsed.status == 404
    finally:
        await lille.client.get_async_httpx_client().aclose()


async def test_a_carrier_lists_and_reads_convoys_through_the_shipments_client(
    clients: dict[str, ModuleType], stack: Stack
) -> None:
    key = await issue_key(
        stack.databases["shipments"], organisation="lille", roles=[Role.LOGISTICS]
    )
    carrier = Partner(clients["shipments"], stack.urls["shipments"], key)
    try:
        page = await carrier.api("tracking.list_convoys").asyncio_detailed(client=carrier.client)
        assert page.status_code == 200, page.content
        assert isinstance(page.parsed, carrier.model("ConvoyPage"))
        assert page.parsed.items == [] and page.parsed.next_cursor is None
        unknown = await carrier.api("tracking.get_convoy").asyncio_detailed(
            "no-such-convoy", client=carrier.client
        )
        assert unknown.status_code == 404 and isinstance(unknown.parsed, carrier.model("Problem"))
        assert unknown.parsed.status == 404 and unknown.parsed.correlation_id
    finally:
        await carrier.client.get_async_httpx_client().aclose()
