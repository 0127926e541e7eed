"""Idempotency-Key on every POST that creates something (shared/idempotency.py), over HTTP on the
registry's real app and database: a webhook subscription retried after a timeout is made once
and its first answer replayed; an API key's issue or rotation refuses the header (its answer
holds a secret kept nowhere) and writes nothing; the same JSON re-sent with other spacing or key
order is the same request, and a key stored with the older raw-bytes hash still replays."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import asyncpg
import pytest

from shared import idempotency
from shared.auth import Role
from tests.registry.conftest import KHARKIV, LILLE, RegistryApi, assert_problem

HOOK = {"url": "https://partner.example.org/hook"}


async def fetch(api: RegistryApi, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(api.url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


# Webhook subscriptions


async def test_a_webhook_retried_with_its_idempotency_key_subscribes_once(
    api: RegistryApi,
) -> None:
    headers = {**await api.as_("lille", Role.MEMBER), "Idempotency-Key": "w1"}
    first = await api.client.post("/v1/webhooks", json=HOOK, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await api.client.post("/v1/webhooks", json=HOOK, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()  # the same subscription, the same secret
    assert first.json()["secret"].startswith("whsec_")
    listed = await api.client.get("/v1/webhooks", headers=headers)
    assert [w["subscription_id"] for w in listed.json()["items"]] == [
        first.json()["subscription_id"]
    ]
    assert len(await fetch(api, "SELECT 1 FROM webhook_subscriptions")) == 1


async def test_concurrent_twins_of_a_webhook_under_one_key_subscribe_once(
    api: RegistryApi,
) -> None:
    headers = {**await api.as_("lille", Role.MEMBER), "Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(api.client.post("/v1/webhooks", json=HOOK, headers=headers) for _ in range(6))
    )
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({(a.json()["subscription_id"], a.json()["secret"]) for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 5
    assert len(await fetch(api, "SELECT 1 FROM webhook_subscriptions")) == 1


async def test_a_webhook_s_answer_is_not_replayed_to_a_key_lacking_the_creator_s_roles(
    api: RegistryApi,
) -> None:
    """The stored answer holds the subscription's secret: it goes only to a key that could
    have made the subscription (shared/idempotency.py `lookup`)."""
    logistics = {**await api.as_("lille", Role.LOGISTICS), "Idempotency-Key": "w1"}
    member = {**await api.as_("lille", Role.MEMBER), "Idempotency-Key": "w1"}
    first = await api.client.post("/v1/webhooks", json=HOOK, headers=logistics)
    assert first.status_code == 201, first.text
    other = await api.client.post("/v1/webhooks", json=HOOK, headers=member)
    assert "logistics" in assert_problem(other, 403)["detail"]
    assert first.json()["secret"] not in other.text
    assert len(await fetch(api, "SELECT 1 FROM webhook_subscriptions")) == 1


async def test_a_webhook_key_sent_again_with_another_body_is_a_422_and_subscribes_nothing(
    api: RegistryApi,
) -> None:
    headers = {**await api.as_("lille", Role.MEMBER), "Idempotency-Key": "w1"}
    assert (await api.client.post("/v1/webhooks", json=HOOK, headers=headers)).is_success
    other = await api.client.post(
        "/v1/webhooks", json={"url": "https://partner.example.org/other"}, headers=headers
    )
    assert assert_problem(other, 422)["type"].endswith("/idempotency-key-reused")
    rows = await fetch(api, "SELECT url FROM webhook_subscriptions")
    assert [r["url"] for r in rows] == [HOOK["url"]]


async def test_webhooks_without_a_key_or_with_two_keys_are_two_subscriptions(
    api: RegistryApi,
) -> None:
    member = await api.as_("lille", Role.MEMBER)
    answers = [
        await api.client.post("/v1/webhooks", json=HOOK, headers=member),
        await api.client.post("/v1/webhooks", json=HOOK, headers=member),
        await api.client.post(
            "/v1/webhooks", json=HOOK, headers={**member, "Idempotency-Key": "a"}
        ),
        await api.client.post(
            "/v1/webhooks", json=HOOK, headers={**member, "Idempotency-Key": "b"}
        ),
    ]
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.json()["subscription_id"] for a in answers}) == 4
    assert len({a.json()["secret"] for a in answers}) == 4


async def test_a_refused_webhook_under_a_key_stores_no_answer(api: RegistryApi) -> None:
    """A 422 is not kept: the same key then subscribes a corrected body."""
    headers = {**await api.as_("lille", Role.MEMBER), "Idempotency-Key": "w1"}
    bad = await api.client.post("/v1/webhooks", json={**HOOK, "from_position": 99}, headers=headers)
    assert [p["name"] for p in assert_problem(bad, 422)["invalid_params"]] == ["from_position"]
    assert (
        await fetch(
            api, "SELECT 1 FROM webhook_subscriptions UNION ALL SELECT 1 FROM idempotency_keys"
        )
        == []
    )
    good = await api.client.post("/v1/webhooks", json=HOOK, headers=headers)
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers


async def test_another_organisation_s_same_key_is_its_own_subscription(api: RegistryApi) -> None:
    lille = {**await api.as_("lille", Role.MEMBER), "Idempotency-Key": "w1"}
    kharkiv = {**await api.as_("kharkiv", Role.MEMBER), "Idempotency-Key": "w1"}
    first = await api.client.post("/v1/webhooks", json=HOOK, headers=lille)
    second = await api.client.post("/v1/webhooks", json=HOOK, headers=kharkiv)
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert first.json()["subscription_id"] != second.json()["subscription_id"]


def test_the_webhook_creation_declares_the_shared_idempotency_key(api: RegistryApi) -> None:
    operation = api.app.openapi()["paths"]["/v1/webhooks"]["post"]
    assert idempotency.HEADER in {p["name"] for p in operation["parameters"]}


# API keys: issue and rotate refuse the header


@pytest.mark.parametrize("action", ["issue", "rotate"])
async def test_an_idempotency_key_on_a_key_s_issue_or_rotation_is_a_422_and_writes_nothing(
    api: RegistryApi, action: str
) -> None:
    await api.register(LILLE)
    admin = await api.as_("lille", Role.ORG_ADMIN)
    path = "/v1/organisations/lille/api-keys"
    body: dict[str, Any] = {"roles": ["member"], "label": "erp"}
    if action == "rotate":
        made = await api.client.post(path, json=body, headers=admin)
        assert made.status_code == 201, made.text
        path, body = f"{path}/{made.json()['key_id']}/rotate", {}
    counted = ("events", "api_keys", "idempotency_keys")
    before = [await api.count(table) for table in counted]
    hashes = "SELECT key_id, secret_hash FROM api_keys ORDER BY key_id"
    held = await fetch(api, hashes)
    response = await api.client.post(path, json=body, headers={**admin, "Idempotency-Key": "k1"})
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["header.idempotency-key"]
    assert "Idempotency-Key is not honoured here" in problem["detail"]
    assert "token" not in response.json()
    assert [await api.count(table) for table in counted] == before
    assert await fetch(api, hashes) == held
    # without the header, the same request goes through
    assert (await api.client.post(path, json=body, headers=admin)).is_success


# The request a key answers: the same JSON, however spaced and ordered


def old_hash(method: str, path: str, body: bytes) -> bytes:
    """The digest keys were stored with before canonical hashing: of the body's bytes."""
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).digest()


async def test_the_same_json_with_other_spacing_and_key_order_is_replayed(
    api: RegistryApi,
) -> None:
    headers = {**api.as_admin, "Idempotency-Key": "reg-1", "Content-Type": "application/json"}
    first = await api.client.post("/v1/organisations", content=json.dumps(KHARKIV), headers=headers)
    assert first.status_code == 201, first.text
    reordered = dict(reversed(list(KHARKIV.items())))
    for text in (json.dumps(KHARKIV, indent=2), json.dumps(reordered, separators=(",", ":"))):
        again = await api.client.post("/v1/organisations", content=text, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    other = await api.client.post(
        "/v1/organisations", content=json.dumps({**KHARKIV, "region": None}), headers=headers
    )
    assert assert_problem(other, 422)["type"].endswith("/idempotency-key-reused")
    assert await api.count() == 1


async def test_a_key_stored_with_the_raw_bytes_hash_still_replays_its_retry(
    api: RegistryApi,
) -> None:
    """A key kept from before canonical hashing (its row holds the body's bytes' digest): the
    retry of the very request still gets the first answer; another request is still a 422."""
    sent = json.dumps(KHARKIV, indent=2).encode()
    headers = {**api.as_admin, "Idempotency-Key": "reg-old", "Content-Type": "application/json"}
    first = await api.client.post("/v1/organisations", content=sent, headers=headers)
    assert first.status_code == 201, first.text
    conn = await asyncpg.connect(api.url)
    try:
        stored = await conn.fetchval("SELECT request_hash FROM idempotency_keys")
        assert stored != old_hash("POST", "/v1/organisations", sent)  # canonical now
        await conn.execute(
            "UPDATE idempotency_keys SET request_hash = $1",
            old_hash("POST", "/v1/organisations", sent),
        )
    finally:
        await conn.close()
    again = await api.client.post("/v1/organisations", content=sent, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    other = await api.client.post(
        "/v1/organisations", content=json.dumps({**KHARKIV, "name": "Kharkov"}), headers=headers
    )
    assert assert_problem(other, 422)["type"].endswith("/idempotency-key-reused")
    assert await api.count() == 1


def test_a_json_body_is_hashed_as_parsed_and_anything_else_as_sent() -> None:
    digest = idempotency.request_hash
    assert digest("POST", "/p", b'{"a": 1, "b": [1, 2]}') == digest(
        "POST", "/p", b'{"b":[1,2],"a":1}'
    )
    # duplicate keys: the value parsed (the last), as the route reads it
    assert digest("POST", "/p", b'{"a": 1, "a": 2}') == digest("POST", "/p", b'{"a":2}')
    assert digest("POST", "/p", b'{"a": 1}') != digest("POST", "/p", b'{"a": 2}')
    assert digest("POST", "/p", b'{"a": 1}') != digest("POST", "/q", b'{"a": 1}')
    for body in (b"", b"not json", b'{"a": NaN}', b"\xff\xfe", b'"\\ud800"'):
        made = digest("POST", "/p", body)
        assert made == made.raw == old_hash("POST", "/p", body), body
    spaced = digest("POST", "/p", b'{ "a" : 1 }')
    assert spaced.raw == old_hash("POST", "/p", b'{ "a" : 1 }') != spaced
