"""A body the service cannot read as JSON is one answer whatever the reason (a syntax error,
invalid UTF-8, nesting past the parser, a number with too many digits): the 422 validation
problem every operation declares, naming `body` and why, never a character position as if it
were a field, nor a 400 no operation declares. A JSON body sent as another media type (none,
text/plain) is a 415 naming application/json, declared on each operation taking JSON."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared.problems import install_error_handlers
from tests.conftest import settings_for


class ConvoyIn(BaseModel):
    convoy_id: str


def app() -> FastAPI:
    made = FastAPI()
    install_error_handlers(made)

    @made.post("/v1/convoys", status_code=201)
    async def plan(body: ConvoyIn) -> dict[str, str]:
        return {"convoy_id": body.convoy_id}

    return made


async def post(body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post(
            "/v1/convoys", content=body, headers={"content-type": "application/json"}
        )


DIGITS = sys.get_int_max_str_digits()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"convoy_id":', "the body is not valid JSON: Expecting value at position 13"),
        (
            b'{"convoy_id": "c1",}',
            "the body is not valid JSON: Expecting property name enclosed in double quotes"
            " at position 19",
        ),
        (b'{"convoy_id": "c\xff1"}', "the body is not valid UTF-8 (byte 16)"),
        (b"[" * 30_000 + b"]" * 30_000, "the JSON is nested too deeply"),
        (b'{"convoy_id": ' + b"1" * 5_000 + b"}", f"a JSON number has more than {DIGITS} digits"),
    ],
)
async def test_a_body_that_is_not_json_is_a_422_naming_the_body(body: bytes, reason: str) -> None:
    answer = await post(body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["type"] == "https://twinaid.example/problems/validation-error"
    assert problem["title"] == "The request is not valid" and problem["status"] == 422
    [param] = problem["invalid_params"]
    assert param["name"] == "body"
    assert param["reason"].startswith(reason), param
    assert problem["detail"] == f"body: {param['reason']}"


async def test_a_field_is_still_named_by_its_path() -> None:
    answer = await post(b'{"convoy_id": 5}')
    assert answer.status_code == 422
    assert [p["name"] for p in answer.json()["invalid_params"]] == ["convoy_id"]
    assert (await post(b'{"convoy_id": "c1"}')).status_code == 201


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_json_body_sent_as_another_media_type_is_a_415_naming_json(
    content_type: str | None,
) -> None:
    transport = httpx.ASGITransport(app=app())
    headers = {"content-type": content_type} if content_type else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/v1/convoys", content=b'{"convoy_id": "c1"}', headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "https://twinaid.example/problems/unsupported-media-type"
    assert problem["accept"] == "application/json"
    assert "Content-Type: application/json" in problem["detail"]


@pytest.mark.parametrize("make", [registry_app, pledges_app, shipments_app])
def test_every_operation_with_a_json_body_declares_415_and_no_other_does(make: Any) -> None:
    document = make(settings_for("postgresql://nobody@127.0.0.1:1/unused")).openapi()
    json_bodies = 0
    for item in document["paths"].values():
        for operation in item.values():
            media = operation.get("requestBody", {}).get("content", {})
            declared = "415" in operation["responses"]
            assert declared == ("application/json" in media), operation["operationId"]
            json_bodies += declared
    assert json_bodies > 5
