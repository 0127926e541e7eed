"""Where a webhook may go, at the edges of the rules: a special name with a final dot or in
capitals, an empty fragment or empty credentials, a host longer than DNS allows, an IPv6
address naming a zone or carrying a loopback IPv4 address in another form. Each refused when
the subscription is made (422 naming `url`, nothing stored) and again at each delivery (a URL
stored before a rule refused it), by the same function."""

from __future__ import annotations

import json

import pytest

from shared import webhook_addresses
from shared.auth import Role
from tests.shared.test_webhooks import Stack, stack  # noqa: F401  (the fixture)

pytestmark = pytest.mark.once  # as tests/shared/test_webhooks.py: plain SQL

LONG_HOST = ".".join(["a" * 60] * 8) + ".example"  # labels of 60, 496 characters in all
NOT_PUBLIC = [
    "https://localhost./hook",
    "https://LOCALHOST./hook",
    "https://hooks.localhost./hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[0:0:0:0:0:ffff:7f00:1]/hook",
    "https://[::ffff:0:7f00:1]/hook",  # IPv4-translated (SIIT)
    "https://[::ffff:0:a00:7]/hook",
]
MALFORMED = [
    "https://partner.example/hook#",
    "https://partner.example#",
    "https://@partner.example/hook",
    "https://a@partner.example/hook",
    f"https://{LONG_HOST}/hook",
    "https://[2606:4700::1111%25eth0]/hook",
    "https://[2606:4700::1111%25" + "a" * 470 + "]/hook",
]


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_a_host_that_is_not_public_is_refused_in_any_spelling(url: str) -> None:
    with pytest.raises(webhook_addresses.NotPublic, match="not a public address"):
        webhook_addresses.check_url(url, allowed_hosts=[])


@pytest.mark.parametrize("url", MALFORMED)
def test_a_url_of_a_form_the_docs_refuse_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"fragment|credentials|host name|zone") as refused:
        webhook_addresses.check_url(url, allowed_hosts=[])
    assert not isinstance(refused.value, webhook_addresses.NotPublic)


def test_a_host_of_253_characters_is_a_name_one_of_254_is_not() -> None:
    name = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253
    assert webhook_addresses.check_url(f"https://{name}/", allowed_hosts=[])
    assert webhook_addresses.check_url(f"https://{name}./", allowed_hosts=[])  # final dot
    with pytest.raises(ValueError, match="over 253"):
        webhook_addresses.check_url(f"https://{name}b/", allowed_hosts=[])


@pytest.mark.parametrize(
    "url",
    [
        "https://partner.example./hook",
        "https://[::ffff:0:808:808]/hook",
        "https://[2606:4700::1111]/hook",
        "https://partner.example/hook?",
    ],
)
def test_a_public_address_is_accepted(url: str) -> None:
    assert webhook_addresses.check_url(url, allowed_hosts=[]) == url


def test_an_allowed_host_is_allowed_with_or_without_its_final_dot_in_any_case() -> None:
    for url in ("https://localhost./hook", "https://LocalHost/hook"):
        assert webhook_addresses.check_url(url, allowed_hosts=["localhost"]) == url
    assert webhook_addresses.check_url("https://hooks.internal./", allowed_hosts=["Hooks.Internal"])


async def never_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} asked of the resolver")


@pytest.mark.parametrize("url", NOT_PUBLIC)
async def test_a_delivery_to_a_host_that_is_not_public_is_refused_before_resolving(
    url: str,
) -> None:
    with pytest.raises(webhook_addresses.Refused) as refused:
        await webhook_addresses.resolve_checked(url, allowed_hosts=[], resolve=never_resolve)
    assert refused.value.reason == "address not allowed"


@pytest.mark.parametrize("url", MALFORMED)
async def test_a_delivery_to_a_url_of_a_refused_form_is_not_made(url: str) -> None:
    with pytest.raises(ValueError, match=r"fragment|credentials|host name|zone"):
        await webhook_addresses.resolve_checked(url, allowed_hosts=[], resolve=never_resolve)


@pytest.mark.parametrize("url", NOT_PUBLIC + MALFORMED)
async def test_a_subscription_to_a_refused_url_is_a_422_naming_the_url(
    stack: Stack,  # noqa: F811
    url: str,
) -> None:
    headers = {**await stack.api.as_("lille", Role.MEMBER), "content-type": "application/json"}
    answer = await stack.api.client.post(
        "/v1/webhooks", content=json.dumps({"url": url}), headers=headers
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert [p["name"] for p in answer.json()["invalid_params"]] == ["url"]
    assert (await stack.get("lille", Role.MEMBER, "/v1/webhooks")).json()["items"] == []
