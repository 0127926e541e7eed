"""A body that cannot be read as JSON for other reasons than its syntax (not UTF-8, nested
deeper than the parser goes, an integer with more digits than Python converts) is answered as
a syntax error is: the 422 validation problem every operation declares, naming the body and
why; nothing stored."""

from __future__ import annotations

import sys
from typing import Any

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem


async def refused(api: ShipmentsApi, body: bytes) -> dict[str, Any]:
    answer = await api.client.post(
        "/v1/convoys",
        content=body,
        headers={**await api.as_("lille", Role.LOGISTICS), "content-type": "application/json"},
    )
    problem: dict[str, Any] = assert_problem(answer, 422)
    assert problem["type"] == "https://twinaid.example/problems/validation-error"
    assert problem["title"] == "The request is not valid"
    return problem


async def test_a_body_that_cannot_be_parsed_is_a_422_naming_the_body(api: ShipmentsApi) -> None:
    stored = await api.count()
    digits = sys.get_int_max_str_digits()
    for body, reason in (
        (b'{"convoy_id": "c\xff1"}', "the body is not valid UTF-8 (byte 16)"),
        (b"[" * 30_000 + b"]" * 30_000, "the JSON is nested too deeply"),
        (b'{"convoy_id": ' + b"1" * 5_000 + b"}", f"a JSON number has more than {digits} digits"),
        (b'{"convoy_id":', "the body is not valid JSON: Expecting value at position 13"),
    ):
        problem = await refused(api, body)
        assert problem["invalid_params"] == [{"name": "body", "reason": reason}]
        assert problem["detail"] == f"body: {reason}"
    assert await api.count() == stored
    # the same convoy, well formed, is made
    assert (await api.plan("c1"))["convoy_id"] == "c1"


async def test_a_deeply_nested_body_holding_a_nul_is_refused_naming_the_body(
    api: ShipmentsApi,
) -> None:
    stored = await api.count()
    answer = await api.client.post(
        "/v1/convoys",
        content=b"[" * 30_000 + b'"\\u0000"' + b"]" * 30_000,
        headers={**await api.as_("lille", Role.LOGISTICS), "content-type": "application/json"},
    )
    problem = assert_problem(answer, 422)
    assert "NUL" in problem["detail"], problem
    assert await api.count() == stored


async def test_a_json_body_sent_as_text_is_a_415_naming_json(api: ShipmentsApi) -> None:
    stored = await api.count()
    for content_type in ("text/plain", None):
        headers = {**await api.as_("lille", Role.LOGISTICS)}
        if content_type:
            headers["content-type"] = content_type
        answer = await api.client.post(
            "/v1/convoys", content=b'{"convoy_id": "c1"}', headers=headers
        )
        problem = assert_problem(answer, 415)
        assert problem["accept"] == "application/json"
    assert await api.count() == stored
