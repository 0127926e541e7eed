"""Organisations manage their own API keys over HTTP (issue 21): issue, list, rotate, revoke.

An `org_admin` key manages its own organisation's keys, a `registry_admin` key any
organisation's; auditors read the lists. Every change is an event of the registry's log
(`registry.api-key-issued`, `-rotated`, `-revoked`); the key works at the registry at once and
at pledges and shipments once they applied the event (shared/api_keys.py has the policy).
The secret is in the answer of an issue or a rotation only: never listed, never stored (only
its SHA-256), never in an event or a log line. Those two writes refuse Idempotency-Key with a
422 naming the header (shared/idempotency.py `refused`) rather than ignore it: a stored answer
to replay would keep the secret in clear for the key's retention, and hand it to any of the
organisation's keys holding the caller's roles; an answer kept without it could not be the
first answer. A retry without the header issues another key, which the list shows and which
can be revoked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.registry import commands, handlers, queries
from services.registry.auth import Service, manager
from services.registry.handlers import api_keys as key_handlers
from services.registry.requests import (
    IssueApiKeyIn,
    KeyId,
    ReportApiKeyUsesIn,
    RevokeApiKeyIn,
    RotateApiKeyIn,
)
from services.registry.requests import KeyOwnerId as OrgId
from services.registry.responses import ApiKey, ApiKeyPage, ApiKeyUsesRecorded, IssuedApiKey
from shared import idempotency, pagination, problems
from shared import key_policy as policy
from shared.auth import Principal
from shared.commands import Command
from shared.deps import Caller, Ctx, ServiceContext, metadata_for
from shared.problems import problem_responses
from shared.web import write

router = APIRouter(prefix="/v1", tags=["api-keys"])
# why an issue or a rotation refuses Idempotency-Key (their answer holds the key's secret)
NO_KEY = (
    "the answer holds the key's secret, which is kept nowhere, so it cannot be replayed;"
    " a retry without the header makes another key (the list shows it; revoke the spare)"
)


def _example(body: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` showing an example request body."""
    return {"requestBody": {"content": {"application/json": {"example": body}}}}


LILLE_KEY = {
    "roles": ["member"],
    "label": "Lille pledge sync (city hall ERP)",
    "expires_at": "2027-03-01T00:00:00Z",
}


@router.post(
    "/organisations/{organisation_id}/api-keys",
    status_code=201,
    operation_id="issueApiKey",
    response_model=IssuedApiKey,
    summary="Issue an API key for the organisation",
    description="A new key of the organisation with the roles and label given, expiring at"
    f" `expires_at` (default {policy.DEFAULT_LIFETIME.days} days ahead, at most"
    f" {policy.MAX_LIFETIME.days}). Its `token` is shown in this answer only. org_admin keys"
    " issue for their own organisation, with the roles member, logistics or org_admin;"
    " registry administrators for any organisation, any role. Recorded as"
    " `registry.api-key-issued`; the key works here at once, at pledges and shipments once"
    " their consumers applied the event (about a second). An Idempotency-Key is refused (422"
    f" naming it): {NO_KEY}",
    responses=problem_responses(403, 404, 422),
    openapi_extra=_example(LILLE_KEY),
)
async def issue_api_key(
    organisation_id: OrgId, body: IssueApiKeyIn, request: Request, ctx: Ctx, caller: Caller
) -> dict[str, Any]:
    command = commands.IssueApiKey(
        organisation_id=organisation_id,
        roles=body.roles,
        label=body.label,
        expires_at=body.expires_at,
        manager=manager(caller),
    )
    return await _with_secret(ctx, request, caller, command)


@router.get(
    "/organisations/{organisation_id}/api-keys",
    operation_id="listApiKeys",
    response_model=ApiKeyPage,
    summary="List the organisation's API keys",
    description="The organisation's keys, oldest first, with label, roles, status, expiry and"
    " last use: never a secret. Revoked keys only with `include_revoked`. For the"
    " organisation's org_admin keys, registry administrators and auditors.",
    responses=problem_responses(403, 404, 422),
)
async def list_api_keys(
    organisation_id: OrgId,
    ctx: Ctx,
    caller: Caller,
    include_revoked: Annotated[bool, Query(description="list revoked keys too")] = False,
    cursor: Annotated[str | None, Query(max_length=500, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    return await _as_seen(
        ctx,
        caller,
        queries.api_keys_of,
        organisation_id=organisation_id,
        include_revoked=include_revoked,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/organisations/{organisation_id}/api-keys/{key_id}",
    operation_id="getApiKey",
    response_model=ApiKey,
    summary="One of the organisation's API keys",
    description="The key's label, roles, status, expiry and last use (never its secret). Another"
    " organisation's key is not found here.",
    responses=problem_responses(403, 404, 422),
)
async def get_api_key(
    organisation_id: OrgId, key_id: KeyId, ctx: Ctx, caller: Caller
) -> dict[str, Any]:
    return await _as_seen(
        ctx, caller, queries.api_key, organisation_id=organisation_id, key_id=key_id
    )


@router.post(
    "/organisations/{organisation_id}/api-keys/{key_id}/rotate",
    operation_id="rotateApiKey",
    response_model=IssuedApiKey,
    summary="Rotate an API key: a new secret, the old one refused",
    description="Replaces the key's secret (the new `token` is shown in this answer only) and"
    " renews its expiry (`expires_at`, default"
    f" {policy.DEFAULT_LIFETIME.days} days ahead); the key id, roles and label stay. The old"
    " secret is refused here at once, at pledges and shipments once they applied"
    " `registry.api-key-rotated`. An expired key may be rotated, a revoked one not (409). An"
    " org_admin rotates only keys whose roles it could grant. An Idempotency-Key is refused"
    f" (422 naming it): {NO_KEY}",
    responses=problem_responses(403, 404, 409, 422),
    openapi_extra=_example({"expires_at": "2027-06-01T00:00:00Z"}),
)
async def rotate_api_key(
    organisation_id: OrgId,
    key_id: KeyId,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    body: RotateApiKeyIn | None = None,
) -> dict[str, Any]:
    command = commands.RotateApiKey(
        organisation_id=organisation_id,
        key_id=key_id,
        expires_at=body.expires_at if body else None,
        manager=manager(caller),
    )
    answer = await _with_secret(ctx, request, caller, command)
    _forget(ctx, key_id)
    return answer


@router.post(
    "/organisations/{organisation_id}/api-keys/{key_id}/revoke",
    operation_id="revokeApiKey",
    response_model=ApiKey,
    summary="Revoke an API key for good",
    description="The key stops working: here at once, at pledges and shipments once they"
    " applied `registry.api-key-revoked`. An org_admin revokes any key of its own organisation."
    " A key revoked already: 409. Honours Idempotency-Key.",
    responses=problem_responses(403, 404, 409, 422),
    openapi_extra={
        **problems.IDEMPOTENT,
        **_example({"reason": "the laptop holding it was stolen"}),
    },
)
async def revoke_api_key(
    organisation_id: OrgId,
    key_id: KeyId,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    body: RevokeApiKeyIn | None = None,
) -> JSONResponse:
    # Idempotency-Key is read (and checked) by `write`; problems.IDEMPOTENT documents it
    command = commands.RevokeApiKey(
        organisation_id=organisation_id,
        key_id=key_id,
        reason=body.reason if body else None,
        manager=manager(caller),
    )
    answer = await write(ctx, request, caller, 200, command)
    _forget(ctx, key_id)
    return answer


@router.post(
    "/api-key-uses",
    operation_id="reportApiKeyUses",
    response_model=ApiKeyUsesRecorded,
    summary="Report when keys were last used at another service (service keys only)",
    description="What the workers of pledges and shipments send about once a minute (only"
    " the keys whose use changed): each key's last use at that service, from its own database."
    " The registry keeps the latest of each (a late or repeated report never moves it back; a"
    " use ahead of the registry's clock counts as now) and lists, for each key, the latest use"
    " in any service. Keys the registry does not hold are left out. Not an event: using a key"
    " changes nothing in the domain. For `service` keys only.",
    responses=problem_responses(403, 422),
    openapi_extra=_example(
        {
            "service": "pledges",
            "uses": [{"key_id": "3f9a0c1d2e4b5a69", "last_used_at": "2026-03-01T09:12:00Z"}],
        }
    ),
)
async def report_api_key_uses(
    body: ReportApiKeyUsesIn, ctx: Ctx, caller: Service
) -> dict[str, Any]:
    async with ctx.db.transaction() as conn:
        recorded = await key_handlers.record_uses(
            conn,
            service=body.service,
            uses=[(u.key_id, u.last_used_at) for u in body.uses],
            now=ctx.clock(),
        )
    return {"recorded": recorded}


async def _as_seen(
    ctx: ServiceContext,
    caller: Principal,
    query: Callable[..., Awaitable[dict[str, Any]]],
    **args: Any,
) -> dict[str, Any]:
    """A read of keys as the caller sees them (queries.py: who manages them, and now)."""
    async with ctx.db.connection() as conn:
        return await query(conn, manager=manager(caller), now=ctx.clock(), **args)


async def _with_secret(
    ctx: ServiceContext, request: Request, caller: Principal, command: Command
) -> dict[str, Any]:
    """A command whose answer holds a key's secret, in a transaction of its own: never under
    an Idempotency-Key (its stored answer would keep the secret), which is refused (422) before
    anything is written."""
    idempotency.refused(request, NO_KEY)
    async with ctx.db.transaction() as conn:
        answer: dict[str, Any] = await handlers.run(
            conn, command, metadata=metadata_for(caller), now=ctx.clock()
        )
    if ctx.notifier is not None:
        ctx.notifier.poke()
    return answer


def _forget(ctx: ServiceContext, key_id: str) -> None:
    """This process answers the change at once (other replicas within AUTH_CACHE_TTL); the
    relay is woken to publish it."""
    if ctx.auth is not None:
        ctx.auth.forget(key_id)
    if ctx.notifier is not None:
        ctx.notifier.poke()
