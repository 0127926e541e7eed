"""Numbers an outside caller writes in digits are read as ASCII digits only, through one
helper (shared.domain_checks.ascii_digits): a timeline cursor's stream version, Last-Event-ID,
Content-Length. str.isdigit() also holds for "²" (int() then fails: a 500) or "٣" (int() reads
another script's 3); such input is the documented 422 naming the field, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from shared.auth import Role
from shared.domain_checks import ascii_digits
from tests.shipments.conftest import ShipmentsApi, assert_problem
from tests.shipments.test_live_stream import served  # noqa: F401 (a fixture)

ORIGIN = ("lille", Role.LOGISTICS)
AT = "2023-03-06T05:30:00+00:00"


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("0", 0),
        ("7", 7),
        ("123456789012345678", 123456789012345678),
        ("1234567890123456789", None),  # beyond max_digits
        ("", None),
        ("²", None),
        ("1²", None),
        ("٣", None),
        ("\uff11", None),  # fullwidth one
        (" 1", None),
        ("1 ", None),
        ("-1", None),
        ("+1", None),
        ("1_0", None),
        ("9" * 5000, None),
    ],
)
def test_only_ascii_digits_within_the_bound_are_a_number(text: str, read: int | None) -> None:
    assert ascii_digits(text, max_digits=18) == read


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
async def planned(api: ShipmentsApi) -> ShipmentsApi:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    return api


async def test_a_forged_timeline_cursor_is_a_422_naming_the_cursor_never_a_500(
    planned: ShipmentsApi,
) -> None:
    api = planned
    path = "/v1/convoys/c1/timeline"
    headers = await api.as_(*ORIGIN)
    page = await api.client.get(path, params={"limit": 1}, headers=headers)
    assert page.status_code == 200 and page.json()["next_cursor"], page.text
    given = json.loads(base64.urlsafe_b64decode(page.json()["next_cursor"] + "=="))
    assert given[1] == "1"  # the version written in ASCII digits
    for version in ["²", "٣", "1²", "¹", " 1", "1 ", "-1", "+1", "1_0", "", "9" * 19, "9" * 5000]:
        answer = await api.client.get(path, params={"cursor": b64([AT, version])}, headers=headers)
        body = assert_problem(answer, 422, "validation-error")
        assert body["invalid_params"][0]["name"] == "query.cursor", (version, body)
    # the cursor the list gave still walks on
    again = await api.client.get(
        path, params={"cursor": page.json()["next_cursor"]}, headers=headers
    )
    assert again.status_code == 200 and again.json()["entries"], again.text


@pytest.mark.parametrize("raw", [b"\xb2", b"\xb9", b"1\xb9", b"\xd9\xa3", b"-1", b"+1", b"1_0"])
async def test_a_last_event_id_that_is_not_ascii_digits_is_a_422(
    api: ShipmentsApi, raw: bytes
) -> None:
    headers = {**await api.as_("kharkiv", Role.MEMBER), "Last-Event-ID": raw}
    answer = await api.client.get("/v1/tracking/updates", headers=headers)
    body = assert_problem(answer, 422, "validation-error")
    assert body["invalid_params"] == [{"name": "Last-Event-ID", "reason": "not a position"}]


async def test_a_last_event_id_of_a_raw_byte_over_http_is_a_422(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    """As the outside tester sent it: the byte 0xB2 on the wire (read as "²")."""
    host, port = served.removeprefix("http://").split(":")
    token = (await api.as_("kharkiv", Role.MEMBER))["Authorization"]
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"GET /v1/tracking/updates HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Authorization: " + token.encode() + b"\r\nLast-Event-ID: \xb2\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 422 "), answer
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["invalid_params"][0]["name"] == "Last-Event-ID"


async def test_a_content_length_of_too_many_digits_is_no_500(planned: ShipmentsApi) -> None:
    api = planned
    headers = await api.as_(*ORIGIN)
    for length in [b"9" * 5000, b"\xb2", "٣".encode()]:
        answer = await api.client.get(
            "/v1/convoys/c1", headers={**headers, "Content-Length": length}
        )
        assert answer.status_code == 200, (length[:8], answer.text)
