"""Each service's OpenAPI document as partner software codes against it: Spectral's `spectral:oas`
finds nothing and the OWASP API Security ruleset no error (tools/spectral/.spectral.yaml says
which OWASP rules are off and why); every operation is typed, its errors are problem+json with
the one Problem schema, its operationId short camelCase; writes declare Idempotency-Key, updates
If-Match; Swagger UI and ReDoc load with no outside URL. The apps are built in process; nothing
here needs a database."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared import openapi
from tests.conftest import settings_for

pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]
SPECTRAL = ROOT / "tools" / "node" / "node_modules" / "@stoplight" / "spectral-cli"
RULESET = ROOT / "tools" / "spectral" / ".spectral.yaml"
APPS = {"registry": registry_app, "pledges": pledges_app, "shipments": shipments_app}
METHODS = {"get", "post", "put", "patch", "delete"}
# operations that need no key: probes, the published contract, the board's configuration
PUBLIC_PATHS = {"/healthz", "/readyz", "/board/config.json"}


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    settings = settings_for("postgresql://nobody@127.0.0.1:1/unused", "kafka.example:9092")
    return {service: create(settings) for service, create in APPS.items()}


@pytest.fixture(scope="module")
def documents(apps: dict[str, FastAPI]) -> dict[str, dict[str, Any]]:
    return {service: app.openapi() for service, app in apps.items()}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _node() -> str:
    """The machine's node, else the one `make install` linked into .venv/bin from the wheel."""
    found = shutil.which("node") or shutil.which("node", path=str(Path(sys.executable).parent))
    assert found is not None, "node is needed: make install"
    return found


def test_spectral_finds_no_oas_problem_and_no_owasp_error(
    documents: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    paths = []
    for service, document in documents.items():
        path = tmp_path / f"{service}.json"
        path.write_text(json.dumps(document))
        paths.append(path)
    cli = SPECTRAL / "dist" / "index.js"
    assert cli.exists(), "Spectral is not installed: make install"
    run = subprocess.run(
        [_node(), str(cli), "lint", "--ruleset", str(RULESET), "--format", "json", "--quiet"]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.stdout.strip().startswith("["), run.stderr[-2000:]
    findings = json.loads(run.stdout)
    by_file: dict[str, Counter[tuple[str, int]]] = {}
    for f in findings:
        by_file.setdefault(Path(f["source"]).stem, Counter())[f["code"], f["severity"]] += 1
    print(
        "\nSpectral findings (code, severity 0=error 1=warning):",
        json.dumps(
            {k: {f"{c}/{s}": n for (c, s), n in v.items()} for k, v in by_file.items()}, indent=1
        ),
    )
    errors = [f for f in findings if f["severity"] == 0]
    oas = [f for f in findings if f["severity"] <= 1 and not f["code"].startswith("owasp:")]
    assert errors == [], [(f["source"], f["code"], f["path"], f["message"]) for f in errors[:20]]
    assert oas == [], [(f["source"], f["code"], f["path"], f["message"]) for f in oas[:20]]


def test_every_operation_is_typed_described_and_named_short(
    documents: dict[str, dict[str, Any]],
) -> None:
    for service, document in documents.items():
        assert openapi.check_operation_ids(document) == [], service
        for method, path, operation in _operations(document):
            where = f"{service} {method.upper()} {path}"
            assert operation.get("description"), where
            assert operation.get("tags"), where
            success = [s for s in operation["responses"] if s.startswith("2")]
            assert success, where
            for status in success:
                content = operation["responses"][status].get("content", {})
                schema = content.get("application/json", {}).get("schema")
                if schema is not None:  # CSV, XML and event streams are documented as text
                    assert set(schema) == {"$ref"}, (where, status, schema)
        described = {t["name"]: t["description"] for t in document["tags"]}
        assert all(described.values()), (service, [t for t, d in described.items() if not d])
        assert document["servers"] and all(
            "x-internal" in s and s["description"] for s in document["servers"]
        )


def test_every_error_is_problem_json_with_the_one_problem_schema(
    documents: dict[str, dict[str, Any]],
) -> None:
    for service, document in documents.items():
        schemas = document["components"]["schemas"]
        assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
        assert {"type", "title", "status"} <= set(schemas["Problem"]["required"])
        for method, path, operation in _operations(document):
            where = f"{service} {method.upper()} {path}"
            responses = operation["responses"]
            keyed = "security" in operation
            expected = {"500", "503"} | ({"401", "429"} if keyed else set())
            assert expected <= set(responses), (where, sorted(responses))
            if keyed:
                assert "WWW-Authenticate" in responses["401"]["headers"], where
                assert "Retry-After" in responses["429"]["headers"], where
            for status, response in responses.items():
                if status[0] in "45":
                    assert response["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    }, (where, status)
            if operation.get("requestBody") or operation.get("parameters"):
                assert "422" in responses, where


def test_writes_declare_idempotency_key_and_updates_if_match(
    documents: dict[str, dict[str, Any]],
) -> None:
    checked = Counter[str]()
    for service, document in documents.items():
        schemas = document["components"]["schemas"]
        for method, path, operation in _operations(document):
            if method == "get" or path.startswith(("/v1/audit", "/v1/webhooks")):
                continue
            if "/api-keys" in path:
                continue
            # a worker's report of key uses is idempotent by itself (the registry keeps the
            # latest of each: sending it again changes nothing)
            if path == "/v1/api-key-uses":
                continue
            # a search reads; an erasure is idempotent by itself (erasing again answers the
            # first erasure)
            if path.startswith("/v1/privacy"):
                continue
            where = f"{service} {method.upper()} {path}"
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert "Idempotency-Key" in headers, where
            checked["idempotent"] += 1
            if "{" in path and not path.endswith("/entries"):
                # an update of an existing record: it takes If-Match and answers its ETag
                assert "If-Match" in headers, where
                assert "412" in operation["responses"], where
                ok = next(s for s in operation["responses"] if s.startswith("2"))
                assert "ETag" in operation["responses"][ok]["headers"], where
                checked["if-match"] += 1
            body = operation.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                (ref,) = re.findall(r'"#/components/schemas/(\w+)"', json.dumps(schema))
                assert schemas[ref].get("examples"), f"{where}: no example for {ref}"
                checked["examples"] += 1
    assert checked["idempotent"] >= 24 and checked["if-match"] >= 15 and checked["examples"] >= 20


def test_every_service_keeps_its_public_operations_to_probes_and_the_contract(
    documents: dict[str, dict[str, Any]],
) -> None:
    for service, document in documents.items():
        public = {
            path for method, path, operation in _operations(document) if "security" not in operation
        }
        contract = {p for p in public if p not in PUBLIC_PATHS}
        assert all(re.match(r"^/(asyncapi\.json|schemas)", p) for p in contract), (service, public)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_from_the_service_itself(apps: dict[str, FastAPI], page: str) -> None:
    app = apps["pledges"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pledges") as client:
        html = (await client.get(page)).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""", html)
        found = [a or b for a, b in urls]
        assert found and not [u for u in found if re.match(r"^(https?:)?//", u)], found
        assert not re.search(r"https?://", html.replace("http://www.w3.org", "")), html[:2000]
        for url in found:
            answer = await client.get(url)
            assert answer.status_code == 200, url
        assert "/docs/static/" in html
