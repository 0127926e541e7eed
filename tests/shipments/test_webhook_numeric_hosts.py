"""A webhook URL whose host is an IPv4 address written in another form than a.b.c.d (one
number, hexadecimal, octal, fewer than four parts), or whose port is 0, is refused when the
subscription is made: 422 naming `url`, nothing stored."""

from __future__ import annotations

import json

import pytest

from shared import webhook_addresses
from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem

REFUSED = {
    "http://2130706433/": "127.0.0.1",
    "http://0x7f000001/": "127.0.0.1",
    "http://017700000001/": "127.0.0.1",
    "http://127.1/": "127.0.0.1",
    "http://0/": "0.0.0.0",
    "http://134744072/hook": "8.8.8.8",  # a public address, written another way
    "https://0x08.8.8.8/hook": "8.8.8.8",
    "http://8.8.8.8./hook": "8.8.8.8",
}


async def test_numeric_hosts_and_port_0_are_refused_at_creation(api: ShipmentsApi) -> None:
    headers = {**await api.as_("lille", Role.MEMBER), "content-type": "application/json"}
    for url in [*REFUSED, "http://example.com:0/", "https://partner.example.1/hook"]:
        answer = await api.client.post(
            "/v1/webhooks", content=json.dumps({"url": url}), headers=headers
        )
        problem = assert_problem(answer, 422)
        assert [p["name"] for p in problem["invalid_params"]] == ["url"], url
    listed = await api.client.get("/v1/webhooks", headers=headers)
    assert listed.json()["items"] == []
    made = await api.client.post(
        "/v1/webhooks", json={"url": "https://8.8.8.8:8443/hook"}, headers=headers
    )
    assert made.status_code == 201, made.text


@pytest.mark.parametrize(("url", "denoted"), REFUSED.items())
def test_the_refusal_names_the_address_and_whether_it_is_public(url: str, denoted: str) -> None:
    with pytest.raises(ValueError, match="four decimal numbers") as refused:
        webhook_addresses.check_url(url, allowed_hosts=[])
    assert f"the IPv4 address {denoted} written another way" in str(refused.value)
    assert ("not a public address" in str(refused.value)) == (denoted != "8.8.8.8")


@pytest.mark.parametrize(
    "url",
    ["https://8.8.8.8/hook", "https://123.example/hook", "https://1e3.example/h", "http://a.b:1/"],
)
def test_names_and_dotted_quads_are_still_accepted(url: str) -> None:
    assert webhook_addresses.check_url(url, allowed_hosts=[]) == url


def test_port_0_is_refused_even_for_an_allowed_host() -> None:
    with pytest.raises(ValueError, match="port 0"):
        webhook_addresses.check_url("http://receiver:0/", allowed_hosts=["receiver"])
