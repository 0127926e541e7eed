"""Organisations manage their own API keys over HTTP (issue 21 point 4), at the registry, on real
PostgreSQL: Lille's org_admin issues, lists, rotates and revokes Lille's keys, each change an
event of the log (never the secret) with the chain intact; Kharkiv's keys are out of its reach,
and so are roles beyond one organisation; an expired key is refused with 401 `key-expired`; the
last use is written at most once a minute; bad input is a 422 that stores nothing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from shared.auth import Authenticator, Role, parse_token
from shared.deps import ServiceContext
from shared.testing import seal_everything
from tests.registry.conftest import KHARKIV, LILLE, RegistryApi, assert_problem

KEYS = "/v1/organisations/{org}/api-keys"


def keys_of(org: str, *rest: str) -> str:
    return "/".join([KEYS.format(org=org), *rest])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authenticator(api: RegistryApi) -> Authenticator:
    ctx: ServiceContext = api.app.state.ctx
    assert ctx.auth is not None
    return ctx.auth


async def issued(
    api: RegistryApi, org: str, by: dict[str, str], *roles: str, label: str = "sync"
) -> dict[str, Any]:
    response = await api.client.post(
        keys_of(org), json={"roles": list(roles), "label": label}, headers=by
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def lille_admin(api: RegistryApi) -> dict[str, str]:
    """Lille registered, and an org_admin key of Lille issued by a registry administrator."""
    await api.register(LILLE, KHARKIV)
    admin = await issued(api, "lille", api.as_admin, "org_admin", label="Lille IT desk")
    return bearer(admin["token"])


async def rows(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_lille_s_admin_issues_lists_rotates_and_revokes_lille_s_keys_each_an_event(
    api: RegistryApi,
) -> None:
    admin = await lille_admin(api)
    before = datetime.now(UTC)
    response = await api.client.post(
        keys_of("lille"),
        json={"roles": ["member"], "label": "Lille pledge sync (city hall ERP)"},
        headers=admin,  # no Idempotency-Key: refused here (test_idempotent_creations.py)
    )
    assert response.status_code == 201, response.text
    key = response.json()
    assert key["organisation_id"] == "lille" and key["roles"] == ["member"]
    assert key["status"] == "active" and key["label"] == "Lille pledge sync (city hall ERP)"
    expires = datetime.fromisoformat(key["expires_at"])
    assert timedelta(days=89) < expires - before < timedelta(days=90, minutes=1)
    token = key["token"]
    assert parse_token(token)[0] == key["key_id"]

    assert (await api.client.get("/v1/organisations/lille", headers=bearer(token))).is_success
    await authenticator(api).drain()  # the last use is written off the request's path

    listed = await api.client.get(keys_of("lille"), headers=admin)
    assert listed.status_code == 200, listed.text
    items = {k["key_id"]: k for k in listed.json()["items"]}
    assert items[key["key_id"]]["label"] == "Lille pledge sync (city hall ERP)"
    assert items[key["key_id"]]["last_used_at"] is not None
    assert all(k["last_used_at"] is not None for k in items.values())  # the admin's own key too
    assert parse_token(token)[1] not in listed.text and "token" not in listed.text

    rotated = await api.client.post(
        keys_of("lille", key["key_id"], "rotate"), json={}, headers=admin
    )
    assert rotated.status_code == 200, rotated.text
    new_token = rotated.json()["token"]
    assert new_token != token and parse_token(new_token)[0] == key["key_id"]
    assert rotated.json()["rotated_at"] is not None
    old = await api.client.get("/v1/organisations/lille", headers=bearer(token))
    assert assert_problem(old, 401)["type"].endswith("/unauthenticated")
    assert (await api.client.get("/v1/organisations/lille", headers=bearer(new_token))).is_success

    revoked = await api.client.post(
        keys_of("lille", key["key_id"], "revoke"),
        json={"reason": "left the ERP"},
        headers={**admin, "Idempotency-Key": "erp-revoke-1"},
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    refused = await api.client.get("/v1/organisations/lille", headers=bearer(new_token))
    assert "was revoked" in assert_problem(refused, 401)["detail"]
    again = await api.client.post(keys_of("lille", key["key_id"], "revoke"), headers=admin)
    assert_problem(again, 409)
    assert_problem(
        await api.client.post(keys_of("lille", key["key_id"], "rotate"), headers=admin), 409
    )

    active = (await api.client.get(keys_of("lille"), headers=admin)).json()["items"]
    assert key["key_id"] not in {k["key_id"] for k in active}
    everything = await api.client.get(
        keys_of("lille"), params={"include_revoked": "true"}, headers=admin
    )
    assert {k["key_id"]: k["status"] for k in everything.json()["items"]}[key["key_id"]] == (
        "revoked"
    )
    one = await api.client.get(keys_of("lille", key["key_id"]), headers=admin)
    assert one.json()["revoked_at"] is not None and one.json()["label"] == key["label"]
    # the revocation's answer writes its instants as every other answer does
    times = ("created_at", "expires_at", "rotated_at", "revoked_at")
    assert {t: revoked.json()[t] for t in times} == {t: one.json()[t] for t in times}
    assert revoked.json()["revoked_at"].endswith("Z")

    # the log: who did what to which key, with the secrets' hashes and never a secret
    logged = await rows(
        api.url,
        "SELECT stream_id, event_type, data::text AS data, metadata::text AS metadata"
        " FROM events WHERE stream_type = 'api_key' ORDER BY id",
    )
    mine = [r for r in logged if r["stream_id"] == f"api_key-{key['key_id']}"]
    assert [r["event_type"] for r in mine] == [
        "registry.api-key-issued",
        "registry.api-key-rotated",
        "registry.api-key-revoked",
    ]
    admin_id = parse_token(admin["Authorization"].removeprefix("Bearer "))[0]
    datas = [json.loads(r["data"]) for r in mine]
    assert all(d["by"] == {"key_id": admin_id, "organisation": "lille"} for d in datas)
    assert datas[0]["label"] == key["label"] and datas[0]["roles"] == ["member"]
    assert datas[0]["expires_at"] is not None and datas[2]["reason"] == "left the ERP"
    for d, t in ((datas[0], token), (datas[1], new_token)):
        assert d["secret_sha256"] == hashlib.sha256(parse_token(t)[1].encode()).hexdigest()
    secrets = [parse_token(t)[1] for t in (token, new_token)]
    everywhere = await rows(
        api.url,
        "SELECT data::text || metadata::text AS t FROM events"
        " UNION ALL SELECT row_to_json(i)::text FROM idempotency_keys i",
    )
    assert not [r for r in everywhere if any(s in r["t"] for s in secrets)]

    conn = await asyncpg.connect(api.url)
    try:
        await seal_everything(conn)
    finally:
        await conn.close()
    auditor = await api.as_("audit", Role.AUDITOR)
    verdict = (await api.client.get("/v1/audit/verify", headers=auditor)).json()
    assert verdict["intact"] and verdict["head_position"] == await api.count(), verdict


async def test_lille_s_admin_cannot_touch_kharkiv_s_keys(api: RegistryApi) -> None:
    admin = await lille_admin(api)
    kharkiv = await issued(api, "kharkiv", api.as_admin, "member")
    events = await api.count()
    for response in (
        await api.client.post(
            keys_of("kharkiv"), json={"roles": ["member"], "label": "x"}, headers=admin
        ),
        await api.client.get(keys_of("kharkiv"), headers=admin),
        await api.client.post(keys_of("kharkiv", kharkiv["key_id"], "revoke"), headers=admin),
    ):
        assert "may not manage the keys of kharkiv" in assert_problem(response, 403)["detail"]
    # through Lille's own path, Kharkiv's key is not there at all
    for response in (
        await api.client.post(keys_of("lille", kharkiv["key_id"], "rotate"), headers=admin),
        await api.client.post(keys_of("lille", kharkiv["key_id"], "revoke"), headers=admin),
        await api.client.get(keys_of("lille", kharkiv["key_id"]), headers=admin),
    ):
        assert assert_problem(response, 404)["detail"].endswith(f"no API key {kharkiv['key_id']}")
    assert await api.count() == events
    assert (
        await api.client.get("/v1/organisations/kharkiv", headers=bearer(kharkiv["token"]))
    ).is_success


async def test_an_org_admin_grants_no_role_beyond_its_organisation(api: RegistryApi) -> None:
    admin = await lille_admin(api)
    events = await api.count()
    for role in ("registry_admin", "auditor", "service"):
        response = await api.client.post(
            keys_of("lille"), json={"roles": ["member", role], "label": "x"}, headers=admin
        )
        assert f"role(s) {role}" in assert_problem(response, 403)["detail"]
    # nor rotate a key holding one (the rotation would hand it the secret); revoking is fine
    auditor = await issued(api, "lille", api.as_admin, "auditor")
    events = await api.count()
    response = await api.client.post(keys_of("lille", auditor["key_id"], "rotate"), headers=admin)
    assert "rotate a key with the role(s) auditor" in assert_problem(response, 403)["detail"]
    assert await api.count() == events
    for role in ("member", "logistics", "org_admin"):
        assert (await issued(api, "lille", admin, role))["roles"] == [role]
    revoked = await api.client.post(keys_of("lille", auditor["key_id"], "revoke"), headers=admin)
    assert revoked.status_code == 200, revoked.text


@pytest.mark.parametrize("role", [Role.MEMBER, Role.LOGISTICS, Role.AUDITOR, Role.SERVICE])
async def test_keys_of_other_roles_manage_no_keys(api: RegistryApi, role: Role) -> None:
    await api.register(LILLE)
    headers = await api.as_("lille", role)
    events = await api.count()
    response = await api.client.post(
        keys_of("lille"), json={"roles": ["member"], "label": "x"}, headers=headers
    )
    assert "org_admin, registry_admin" in assert_problem(response, 403)["detail"]
    listed = await api.client.get(keys_of("lille"), headers=headers)
    # auditors read every organisation's list, and change nothing
    assert listed.status_code == (200 if role is Role.AUDITOR else 403)
    assert await api.count() == events


async def test_an_expired_key_is_refused_with_401_key_expired_until_rotated(
    api: RegistryApi,
) -> None:
    admin = await lille_admin(api)
    soon = datetime.now(UTC) + timedelta(hours=1)
    response = await api.client.post(
        keys_of("lille"),
        json={"roles": ["member"], "label": "an hour", "expires_at": soon.isoformat()},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    key = response.json()
    assert datetime.fromisoformat(key["expires_at"]) == soon
    auth = authenticator(api)
    assert (await api.client.get("/v1/organisations", headers=bearer(key["token"]))).is_success
    auth.clock = lambda: datetime.now(UTC) + timedelta(hours=2)  # two hours later
    refused = assert_problem(
        await api.client.get("/v1/organisations", headers=bearer(key["token"])), 401
    )
    assert refused["type"] == "https://twinaid.example/problems/key-expired"
    assert refused["title"] == "The API key has expired"
    assert "expired at" in refused["detail"] and refused["expired_at"]
    listed = (await api.client.get(keys_of("lille"), headers=admin)).json()["items"]
    assert {k["key_id"]: k["status"] for k in listed}[key["key_id"]] == "active"  # by the clock
    rotated = await api.client.post(keys_of("lille", key["key_id"], "rotate"), headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert (
        await api.client.get("/v1/organisations", headers=bearer(rotated.json()["token"]))
    ).is_success


async def test_a_key_s_use_is_written_at_most_once_a_minute(api: RegistryApi) -> None:
    admin = await lille_admin(api)
    key = await issued(api, "lille", admin, "member")
    auth = authenticator(api)
    await auth.drain()
    written = auth.uses_recorded
    for _ in range(20):
        assert (await api.client.get("/v1/organisations", headers=bearer(key["token"]))).is_success
    await auth.drain()
    assert auth.uses_recorded == written + 1
    [row] = await rows(
        api.url, "SELECT last_used_at FROM api_keys WHERE key_id = $1", key["key_id"]
    )
    assert row["last_used_at"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"roles": [], "label": "x"}, "roles"),
        ({"roles": ["pope"], "label": "x"}, "roles.0"),
        ({"roles": ["member"], "label": ""}, "label"),
        ({"roles": ["member"]}, "label"),
        ({"roles": ["member"], "label": "x", "secret": "mine"}, "secret"),
        ({"roles": ["member"], "label": "x", "expires_at": 1893456000}, "expires_at"),
        ({"roles": ["member"], "label": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"roles": ["member"], "label": "x", "expires_at": "in a year"}, "expires_at"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
    api: RegistryApi, body: dict[str, Any], field: str
) -> None:
    admin = await lille_admin(api)
    events, keys = await api.count(), await api.count("api_keys")
    problem = assert_problem(await api.client.post(keys_of("lille"), json=body, headers=admin), 422)
    assert field in [p["name"] for p in problem["invalid_params"]], problem
    assert (await api.count(), await api.count("api_keys")) == (events, keys)


async def test_an_expiry_beyond_a_year_or_an_unknown_organisation_is_refused(
    api: RegistryApi,
) -> None:
    admin = await lille_admin(api)
    events = await api.count()
    far = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    problem = assert_problem(
        await api.client.post(
            keys_of("lille"),
            json={"roles": ["member"], "label": "x", "expires_at": far},
            headers=admin,
        ),
        422,
    )
    assert "at most 365 days ahead" in problem["detail"]
    assert problem["invalid_params"][0]["name"] == "expires_at"
    unknown = await api.client.post(
        keys_of("atlantis"), json={"roles": ["member"], "label": "x"}, headers=api.as_admin
    )
    assert "atlantis does not exist" in assert_problem(unknown, 404)["detail"]
    assert_problem(await api.client.get(keys_of("lille", "NOT-HEX"), headers=admin), 422)
    assert_problem(
        await api.client.get(keys_of("lille"), params={"cursor": "bm9wZQ"}, headers=admin), 422
    )
    assert await api.count() == events


async def test_the_list_pages_with_a_cursor(api: RegistryApi) -> None:
    admin = await lille_admin(api)
    made = [
        (await issued(api, "lille", admin, "member", label=f"k{n}"))["key_id"] for n in range(3)
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get(keys_of("lille"), params=params, headers=admin)).json()
        seen += [k["key_id"] for k in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and set(made) <= set(seen)  # the admin's own key and the three


async def test_keys_issued_outside_the_log_stay_as_they_were(api: RegistryApi) -> None:
    """A key issued straight into the database (as `twinaid keys issue` did before its keys
    were events of the log; shared.testing.issue_key still does) never expires, is listed, and
    can be rotated over HTTP, which then records it in the log."""
    admin = await lille_admin(api)
    token = await api.key("lille", Role.LOGISTICS)  # straight into the table: auth.issue
    key_id = parse_token(token)[0]
    listed = (await api.client.get(keys_of("lille"), headers=admin)).json()["items"]
    assert {k["key_id"]: k["expires_at"] for k in listed}[key_id] is None
    rotated = await api.client.post(keys_of("lille", key_id, "rotate"), headers=admin)
    assert rotated.status_code == 200 and rotated.json()["expires_at"] is not None
    [event] = await rows(
        api.url, "SELECT stream_version FROM events WHERE stream_id = $1", f"api_key-{key_id}"
    )
    assert event["stream_version"] == 1
    assert (await api.client.get("/v1/organisations", headers=bearer(token))).status_code == 401


@pytest.mark.once  # the document only: no database
def test_the_routes_are_declared_for_partners() -> None:
    from services.registry.app import create_app
    from tests.conftest import settings_for

    document = create_app(settings_for("postgresql://x@127.0.0.1:1/x")).openapi()
    operations = {
        op["operationId"]: (path, method, op)
        for path, item in document["paths"].items()
        if "api-keys" in path
        for method, op in item.items()
    }
    assert set(operations) == {
        "issueApiKey",
        "listApiKeys",
        "getApiKey",
        "rotateApiKey",
        "revokeApiKey",
    }
    for path, method, op in operations.values():
        assert op["tags"] == ["api-keys"] and op["description"], path
        assert "200" in op["responses"] or "201" in op["responses"]
        assert {"401", "403", "404", "422"} <= set(op["responses"]), (path, op["responses"])
        if method == "post" and "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["example"], path
    assert "Idempotency-Key" in {
        p["name"] for p in operations["revokeApiKey"][2].get("parameters", [])
    }


async def test_the_operator_s_own_keys_are_listed_though_it_is_in_no_directory(
    api: RegistryApi,
) -> None:
    """twinaid (the operator, its administrator key here) registers no organisation but holds
    keys: a registry administrator lists them as any organisation's, so a leaked one can be
    found and revoked; an id holding neither an organisation nor a key is unknown."""
    listed = await api.client.get(keys_of("twinaid"), headers=api.as_admin)
    assert listed.status_code == 200, listed.text
    assert [k["organisation_id"] for k in listed.json()["items"]] == ["twinaid"]
    assert listed.json()["items"][0]["roles"] == ["registry_admin"]
    unknown = await api.client.get(keys_of("atlantis"), headers=api.as_admin)
    assert "atlantis does not exist" in assert_problem(unknown, 404)["detail"]
