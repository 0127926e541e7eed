"""How every route reads a JSON request body: as Python's json module does, except that a
number with a fraction or an exponent (which it reads as a float, rounded to 17 significant
digits) also keeps the text it was written in (`JsonNumber.text`).

A float is what every model expecting one gets, as before (coordinates, delays: a JsonNumber is
a float, strict validation included). A field whose value must be exact, a decimal quantity,
reads `written(value)` instead: `123456789012.123456` is that, not the float
123456789012.12346, and `1000000000000.0000001` keeps its seventh decimal place to be refused
for it. Nothing else changes: an integer stays an int, NaN and Infinity stay Python's floats,
and a number too large for a float still reads as an infinity (with its text kept).

Wired once for all three services where shared/web.py adds each router's routes to an app
(`read_numbers_as_written`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi._body_limit import wrap_app_with_body_limit  # as APIRoute wraps its app
from fastapi.routing import APIRoute, request_response
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["JsonNumber", "loads", "read_numbers_as_written", "written"]


class JsonNumber(float):
    """A JSON number with a fraction or an exponent: its float, and `text`, as written."""

    __slots__ = ("text",)
    text: str


def _number(text: str) -> JsonNumber:
    number = JsonNumber(text)
    number.text = text
    return number


def loads(body: bytes | str) -> Any:
    """`body` as json.loads reads it, each fractional or exponent number a JsonNumber."""
    return json.loads(body, parse_float=_number)


def written(value: float) -> Decimal:
    """The exact decimal a JSON number was written as (its float's shortest repr when it did
    not come from a JSON body: a float made in Python is exactly what it is)."""
    text = value.text if isinstance(value, JsonNumber) else repr(value)
    return Decimal(text)


class _NumbersAsWritten(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _reading_numbers_as_written(handler: Handler) -> Handler:
    async def numbers_as_written(request: Request) -> Response:
        # the same scope and channels: only how the body's JSON is read differs
        return await handler(_NumbersAsWritten(request.scope, request.receive, request._send))

    return numbers_as_written


def read_numbers_as_written(route: APIRoute) -> None:
    """Rebuild `route`'s ASGI app as APIRoute builds it, its request reading JSON numbers as
    written (loads). FastAPI reads the body with `request.json()` of a plain Request; routes
    here come from many routers (documented, plain, shared), so it is set once per route where
    the app takes them in rather than by a route class on each router."""
    route.app = wrap_app_with_body_limit(
        request_response(_reading_numbers_as_written(route.get_route_handler())),
        route.max_body_size,
    )
