"""What the edge answers before any route is declared on every operation it may reach: 413 for
a body over the limit on any POST, PUT or PATCH, 422 for a NUL in the path or query. The one
Idempotency-Key parameter is documented alike everywhere, and the AsyncAPI header that carries
its digest admits the raw key older events keep. The apps are built in process; no database."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared import asyncapi, problems, published
from tests.conftest import settings_for

pytestmark = pytest.mark.once

APPS = {"registry": registry_app, "pledges": pledges_app, "shipments": shipments_app}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    settings = settings_for("postgresql://nobody@127.0.0.1:1/unused")
    return {name: make(settings).openapi() for name, make in APPS.items()}


def _operations(documents: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (f"{service} {method.upper()} {path}", method, operation)
        for service, doc in documents.items()
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]


def test_every_operation_taking_a_body_declares_413(documents: dict[str, Any]) -> None:
    bodies = [
        (where, op)
        for where, method, op in _operations(documents)
        if "requestBody" in op or method in ("post", "put", "patch")
    ]
    names = {op["operationId"] for _, op in bodies}
    assert {"issueApiKey", "rotateApiKey", "revokeApiKey", "createWebhook"} <= names
    assert "replayWebhook" in names
    for where, op in bodies:
        answer = op["responses"].get("413")
        assert answer is not None, where
        assert answer["content"] == {
            problems.PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }, where


def test_every_operation_with_a_path_or_query_parameter_declares_422(
    documents: dict[str, Any],
) -> None:
    for where, _, op in _operations(documents):
        if any(p["in"] in ("path", "query") for p in op.get("parameters", [])):
            assert "422" in op["responses"], where


def test_every_idempotency_key_is_the_one_shared_parameter(documents: dict[str, Any]) -> None:
    (shared,) = problems.IDEMPOTENT["parameters"]
    seen = 0
    for where, _, op in _operations(documents):
        for parameter in op.get("parameters", []):
            if parameter["name"].lower() == "idempotency-key":
                assert parameter == shared, where
                seen += 1
    revoke = next(op for _, _, op in _operations(documents) if op["operationId"] == "revokeApiKey")
    assert shared in revoke["parameters"]
    assert seen > 10


def test_the_if_match_header_admits_weak_tags_and_a_star(documents: dict[str, Any]) -> None:
    revise = documents["pledges"]["paths"]["/v1/needs/{need_id}/revisions"]["post"]
    (if_match,) = [p for p in revise["parameters"] if p["name"] == "If-Match"]
    schema = if_match["schema"]
    for value in ('"3"', "3", 'W/"3"', "*", '"123456789012345678"', 'W/"123456789012345678"'):
        jsonschema.validate(value, schema)
    for value in ("", "W/3", "**", '"3', "three", '"1234567890123456789"', 'w/"3"'):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)


def test_the_idempotency_key_header_admits_a_digest_and_an_older_raw_key() -> None:
    schema = {"type": "string", **asyncapi.HEADERS["ce_idempotencykey"]}
    # the empty string: what relays before the rule sent when the write had no key
    for value in (published.idempotency_digest("lille", "lille-1"), "lille-1", "k" * 200, ""):
        jsonschema.validate(value, schema)
    for value in ("a\nb", "k" * 201):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)
