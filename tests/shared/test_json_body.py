"""How every route reads a JSON body (shared/json_body.py): a fractional or exponent number is
a float that keeps its text, so a float field reads it as before (strictly too) and an exact
field reads it as written."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from shared import json_body
from shared.route_docs import Router
from shared.web import _add_routes


def test_a_fractional_number_is_a_float_that_keeps_its_text() -> None:
    doc = json_body.loads(b'{"a": 123456789012.123456, "b": [1e400, -0.0], "c": 5, "d": NaN}')
    assert doc == json.loads(b'{"a": 123456789012.123456, "b": [1e400, -0.0], "c": 5, "d": NaN}')
    assert isinstance(doc["a"], float) and doc["a"].text == "123456789012.123456"
    assert json_body.written(doc["a"]) == Decimal("123456789012.123456")
    assert math.isinf(doc["b"][0]) and json_body.written(doc["b"][0]) == Decimal("1e400")
    assert type(doc["c"]) is int
    assert math.isnan(doc["d"]) and not isinstance(doc["d"], json_body.JsonNumber)
    assert json_body.written(0.1) == Decimal("0.1")  # a float made in Python: its repr


class _Coordinates(BaseModel):
    lat: Annotated[float, Field(ge=-90, le=90, strict=True, allow_inf_nan=False)]


def test_a_float_field_reads_a_json_number_as_it_did() -> None:
    assert _Coordinates.model_validate(json_body.loads('{"lat": 50.5}')).lat == 50.5
    with pytest.raises(ValidationError):
        _Coordinates.model_validate(json_body.loads('{"lat": 1e400}'))
    assert json.dumps(json_body.loads('{"lat": 50.5}')) == '{"lat": 50.5}'


def _exact(value: object) -> object:
    return json_body.written(value) if isinstance(value, float) else value


class _Exact(BaseModel):
    value: Annotated[Decimal, BeforeValidator(_exact)]


async def test_a_route_added_to_an_app_reads_numbers_as_written() -> None:
    """As shared/web.py adds every service's routes (_add_routes)."""
    router = Router()

    @router.post("/exact")
    async def exact(body: _Exact) -> dict[str, str]:
        return {"value": str(body.value)}

    app = FastAPI()
    _add_routes(app, router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for number in ("123456789012.123456", "1000000000000.0000001", "1E+3"):
            response = await client.post(
                "/exact",
                content=b'{"value": ' + number.encode() + b"}",
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
            assert Decimal(response.json()["value"]) == Decimal(number)
            assert response.json()["value"] == number
