"""shared/deps.BearerKey: the caller authenticated once per request, then its roles checked."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from shared import problems
from shared.deps import BearerKey, Caller
from shared.errors import Unauthenticated
from shared.principals import Principal, Role


class _Auth:
    def __init__(self) -> None:
        self.calls = 0

    async def authenticate(self, header: str | None) -> Principal:
        self.calls += 1
        if header != "Bearer good":
            raise Unauthenticated("no valid key")
        return Principal(key_id="k1", organisation="org-1", roles=frozenset({Role.MEMBER}))


class _Limiter:
    def __init__(self) -> None:
        self.taken: list[str] = []

    async def take(self, key_id: str) -> None:
        self.taken.append(key_id)


Member = Annotated[Principal, Depends(BearerKey(Role.MEMBER))]
Admin = Annotated[Principal, Depends(BearerKey(Role.REGISTRY_ADMIN))]


def _app() -> tuple[FastAPI, _Auth, _Limiter]:
    app = FastAPI()
    problems.install_error_handlers(app)
    auth, limiter = _Auth(), _Limiter()
    app.state.ctx = SimpleNamespace(auth=auth, rate_limiter=limiter)

    @app.get("/both")
    async def both(caller: Caller, member: Member) -> dict[str, str]:
        assert caller is member
        return {"key": member.key_id}

    @app.get("/admin")
    async def admin(caller: Admin) -> dict[str, str]:
        return {"key": caller.key_id}

    return app, auth, limiter


async def _get(app: FastAPI, path: str, *, with_key: bool = True) -> httpx.Response:
    headers = {"Authorization": "Bearer good"} if with_key else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


@pytest.mark.asyncio
async def test_two_bearer_keys_of_one_route_authenticate_and_spend_once() -> None:
    app, auth, limiter = _app()
    response = await _get(app, "/both")
    assert response.status_code == 200, response.text
    assert auth.calls == 1
    assert limiter.taken == ["k1"]


@pytest.mark.asyncio
async def test_a_missing_role_is_403_after_the_token_is_spent() -> None:
    app, _, limiter = _app()
    response = await _get(app, "/admin")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert limiter.taken == ["k1"]  # a refused request still counts against the key


@pytest.mark.asyncio
async def test_no_key_is_401_and_spends_nothing() -> None:
    app, _, limiter = _app()
    response = await _get(app, "/admin", with_key=False)
    assert response.status_code == 401
    assert limiter.taken == []
