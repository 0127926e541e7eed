"""HEAD and 405 over a real HTTP server (RFC 9110): HEAD is answered wherever GET is, with the
GET's status and headers and no body (a live stream ends at once), without HEAD operations in
the OpenAPI document; a 405's Allow lists every method the path serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from shared.auth import Role
from shared.infra import free_port
from tests.shipments.conftest import ShipmentsApi, assert_problem

LOGISTICS = ("lille", Role.LOGISTICS)
SAME = ("content-type", "content-length", "etag", "cache-control", "www-authenticate")


@pytest.fixture
async def client(api: ShipmentsApi) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app behind uvicorn (its lifespan already runs in the api fixture)."""
    port = free_port()
    config = uvicorn.Config(
        api.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        await task


async def test_head_answers_as_get_does_without_a_body(
    api: ShipmentsApi, client: httpx.AsyncClient
) -> None:
    await api.plan("c1")
    key = await api.as_(*LOGISTICS)
    for path, headers, status in (
        ("/healthz", {}, 200),
        ("/board/", {}, 200),
        ("/v1/convoys", key, 200),
        ("/v1/convoys/c1", key, 200),
        ("/v1/convoys/c1/epcis", key, 200),
        ("/v1/convoys", {}, 401),
        ("/v1/convoys/nope", key, 404),
    ):
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert (head.status_code, got.status_code) == (status, status), path
        assert head.content == b"" and got.content != b"", path
        for name in SAME:
            assert head.headers.get(name) == got.headers.get(name), (path, name)
        assert head.headers["x-correlation-id"]


async def test_head_on_the_live_stream_ends_at_once(
    client: httpx.AsyncClient, api: ShipmentsApi
) -> None:
    async with asyncio.timeout(5):
        head = await client.head("/v1/tracking/updates", headers=await api.as_(*LOGISTICS))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")


async def test_a_405_allows_every_method_the_path_serves(
    api: ShipmentsApi, client: httpx.AsyncClient
) -> None:
    key = await api.as_(*LOGISTICS)
    for method in ("OPTIONS", "DELETE", "PUT", "PATCH"):
        refused = await client.request(method, "/v1/convoys", headers=key)
        assert_problem(refused, 405)
        assert refused.headers["allow"] == "GET, HEAD, POST", method
    for method in ("GET", "PUT"):
        refused = await client.request(method, "/v1/convoys/c1/cancel", headers=key)
        assert_problem(refused, 405)
        assert refused.headers["allow"] == "POST", method
    head = await client.head("/v1/convoys/c1/cancel", headers=key)
    assert (head.status_code, head.headers["allow"], head.content) == (405, "POST", b"")
    refused = await client.delete("/healthz")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")


async def test_head_is_no_operation_of_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operations = {method for item in document["paths"].values() for method in item}
    assert "get" in operations and "head" not in operations
