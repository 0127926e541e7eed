"""X-Correlation-ID: a client's id is kept when it is printable ASCII, and then echoed, logged
and handed to the request (events' metadata, Kafka headers) as the very bytes sent; any other
(bytes over 0x7f, control characters, empty) is replaced by a fresh UUID, the same one echoed
and seen inside the request, never a re-encoding of what was sent (\\xe9 back as \\xc3\\xa9)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from shared import logs
from shared.edge import EdgeMiddleware
from shared.metrics import Metrics
from tests.asgi import request


def app(seen: list[str | None]) -> Any:
    inner = FastAPI()

    @inner.get("/v1/ping")
    async def ping() -> dict[str, str]:
        seen.append(logs.correlation_id.get())  # what logs, events and Kafka headers get
        return {}

    return EdgeMiddleware(inner, Metrics("test"))


async def echoed(sent: bytes) -> tuple[bytes, str | None]:
    seen: list[str | None] = []
    answer = await request(app(seen), "GET", "/v1/ping", headers=[(b"x-correlation-id", sent)])
    assert answer.status == 200
    [back] = [v for k, v in answer.headers if k == b"x-correlation-id"]
    [inside] = seen
    return back, inside


@pytest.mark.parametrize("sent", [b"convoy-42", b"trace me ~!#", b"5b0e0c1e-8d0e-4a52-9a55"])
async def test_a_printable_ascii_id_is_echoed_and_used_as_sent(sent: bytes) -> None:
    back, inside = await echoed(sent)
    assert back == sent
    assert inside == sent.decode("ascii")


@pytest.mark.parametrize(
    "sent", [b"\xe9\xe9", b"caf\xc3\xa9", b"trace\x7f", b"a\tb", b"\x80", b"ok\xffok"]
)
async def test_any_other_id_is_replaced_by_a_fresh_uuid(sent: bytes) -> None:
    back, inside = await echoed(sent)
    assert back != sent
    assert str(uuid.UUID(back.decode("ascii"))) == back.decode("ascii")
    assert inside == back.decode("ascii")
