"""Registry routes: HTTP <-> handlers and queries. No SQL, no rules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from functools import partial
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from services.registry import domain, handlers, projections, queries
from services.registry import events as ev
from services.registry import privacy as personal
from services.registry import responses as R
from services.registry.requests import (
    AliasIn,
    AsOf,
    ContactsIn,
    CorrectionIn,
    Cursor,
    IfMatch,
    Limit,
    OrganisationIn,
    OrgId,
    PartnershipId,
    PartnershipIn,
    RenameIn,
    TransitionIn,
)
from shared import problems
from shared.auth import Principal, Role
from shared.deps import etag
from shared.errors import NotFound
from shared.events import Metadata
from shared.web import Caller, Ctx, ServiceContext, execute_write, write


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Before the first request: the name skeletons of rows written before they were kept
    (the namesake probe looks them up; only Python's ICU computes them)."""
    ctx: ServiceContext = app.state.ctx
    async with ctx.db.connection() as conn:
        await projections.fill_name_skeletons(conn)
    yield


router = APIRouter(prefix="/v1", lifespan=_lifespan)
PAGE = 100  # the default page of the organisation network (at most pagination.MAX_LIMIT)


def _acting_for(caller: Principal) -> str | None:
    """None for registry administrators (they act for anyone), else the key's organisation."""
    return None if caller.has(Role.REGISTRY_ADMIN) else caller.organisation


def _sees_contacts(caller: Principal, organisation_id: str) -> bool:
    return caller.has(Role.REGISTRY_ADMIN) or caller.organisation == organisation_id


@router.post(
    "/organisations",
    status_code=201,
    tags=["organisations"],
    responses=problems.documented(
        R.OrganisationChanged,
        403,
        409,
        413,
        422,
        status=201,
        headers=problems.ETAG,
        description="Registered",
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def register_organisation(
    body: OrganisationIn, request: Request, ctx: Ctx, caller: Caller
) -> JSONResponse:
    """Register an organisation (registry administrators). A namesake in the same country is
    refused with 409 naming it, unless `distinct` is true."""
    caller.require(Role.REGISTRY_ADMIN)
    command = domain.RegisterOrganisation(
        organisation_id=body.organisation_id or str(uuid.uuid4()),
        name=body.name,
        kind=body.kind,
        country=body.country,
        region=body.region,
        aliases=tuple(body.aliases),
        coordinates=body.coordinates.model_dump() if body.coordinates else None,
        parent_id=body.parent_id,
        contacts=tuple(c.model_dump() for c in body.contacts),
    )
    now = ctx.clock()

    async def attempt(meta: Metadata) -> dict[str, Any] | None:
        prepared = handlers.prepare_registration(
            command, distinct=body.distinct, metadata=meta, now=now
        )
        if prepared is None:
            return None
        answer: dict[str, Any] | None = await ctx.group_commit(
            "registrations", partial(_register_together, ctx)
        ).submit(prepared)
        return answer

    return await write(
        ctx,
        request,
        caller,
        201,
        lambda conn, meta: handlers.register_organisation(
            conn, command, distinct=body.distinct, metadata=meta, now=now
        ),
        attempt=attempt,
    )


async def _register_together(
    ctx: ServiceContext, registrations: list[handlers.Registration]
) -> list[dict[str, Any] | None]:
    """Registrations that arrived together, in one statement (group commit)."""
    async with ctx.db.connection() as conn:
        return await handlers.register_together(conn, registrations)


@router.get(
    "/organisations", tags=["organisations"], responses=problems.documented(R.OrganisationPage, 422)
)
async def search_organisations(
    ctx: Ctx,
    caller: Caller,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    kind: domain.OrganisationKind | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Search by name or alias (case- and accent-insensitive), kind, country and region."""
    async with ctx.db.connection() as conn:
        return await queries.search_organisations(
            conn,
            q=q,
            kind=kind.value if kind else None,
            country=country,
            region=region,
            cursor=cursor,
            limit=limit,
        )


@router.get(
    "/organisations/{organisation_id}",
    tags=["organisations"],
    responses=problems.documented(R.Organisation, 404, 422, headers=problems.ETAG),
)
async def get_organisation(
    organisation_id: OrgId, ctx: Ctx, caller: Caller, response: Response, as_of: AsOf = None
) -> dict[str, Any]:
    """One organisation; contacts only for itself and registry administrators. Its ETag is its
    version: send it in If-Match to update only what you read."""
    contacts = _sees_contacts(caller, organisation_id)
    async with ctx.db.connection() as conn:
        if as_of is None:
            found = await queries.organisation(conn, organisation_id, with_contacts=contacts)
            if contacts:  # sealed in the read model: opened (or "(erased)") for those who see them
                found["contacts"] = await personal.shown(conn, found["contacts"])
            response.headers["ETag"] = etag(found["version"])
            return found
        state = domain.require_existing(
            await handlers.load_organisation(conn, organisation_id, as_of=as_of)
        )
        folded = asdict(state)
        folded["aliases"] = list(state.aliases)
        folded["contacts"] = await personal.shown(conn, state.contacts) if contacts else []
    if not contacts:
        folded.pop("contacts")
    return {**folded, "as_of": as_of.isoformat()}


@router.post(
    "/organisations/{organisation_id}/rename",
    tags=["organisations"],
    responses=problems.documented(
        R.OrganisationChanged, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def rename_organisation(
    organisation_id: OrgId,
    body: RenameIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Rename (registry administrators); the previous name stays findable as an alias."""
    caller.require(Role.REGISTRY_ADMIN)
    command = domain.RenameOrganisation(name=body.name, reason=body.reason)
    return await write(
        ctx,
        request,
        caller,
        200,
        lambda conn, meta: handlers.change_organisation(
            conn,
            organisation_id,
            lambda s: domain.rename(s, command, now=ctx.clock()),
            if_match=if_match,
            metadata=meta,
            now=ctx.clock(),
        ),
    )


@router.post(
    "/organisations/{organisation_id}/aliases",
    tags=["organisations"],
    responses=problems.documented(
        R.OrganisationChanged, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def add_alias(
    organisation_id: OrgId,
    body: AliasIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Record another name or spelling (registry administrators)."""
    caller.require(Role.REGISTRY_ADMIN)
    command = domain.AddAlias(alias=body.alias)
    return await write(
        ctx,
        request,
        caller,
        200,
        lambda conn, meta: handlers.change_organisation(
            conn,
            organisation_id,
            lambda s: domain.add_alias(s, command, now=ctx.clock()),
            if_match=if_match,
            metadata=meta,
            now=ctx.clock(),
        ),
    )


@router.post(
    "/organisations/{organisation_id}/corrections",
    tags=["organisations"],
    responses=problems.documented(
        R.OrganisationChanged, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def correct_organisation(
    organisation_id: OrgId,
    body: CorrectionIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Correct kind, country, region, coordinates or parent, with a reason (administrators)."""
    caller.require(Role.REGISTRY_ADMIN)
    changes = body.model_dump(exclude_unset=True, exclude={"reason"}, mode="json")
    command = domain.CorrectOrganisation(changes=changes, reason=body.reason)
    return await write(
        ctx,
        request,
        caller,
        200,
        lambda conn, meta: handlers.correct_organisation(
            conn, organisation_id, command, if_match=if_match, metadata=meta, now=ctx.clock()
        ),
    )


@router.put(
    "/organisations/{organisation_id}/contacts",
    tags=["organisations"],
    responses=problems.documented(
        R.OrganisationChanged, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def change_contacts(
    organisation_id: OrgId,
    body: ContactsIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Replace the contacts (the organisation's own members or administrators)."""
    caller.require(Role.REGISTRY_ADMIN, Role.MEMBER)
    caller.require_acting_for(organisation_id, unless=(Role.REGISTRY_ADMIN,))
    contacts = [c.model_dump() for c in body.contacts]
    return await write(
        ctx,
        request,
        caller,
        200,
        lambda conn, meta: handlers.change_contacts(
            conn, organisation_id, contacts, if_match=if_match, metadata=meta, now=ctx.clock()
        ),
    )


@router.get(
    "/organisations/{organisation_id}/network",
    tags=["partnerships"],
    responses=problems.documented(R.Network, 404, 422),
    operation_id="getOrganisationNetwork",
)
async def organisation_network(
    organisation_id: OrgId,
    ctx: Ctx,
    caller: Caller,
    cursor: Cursor = None,
    limit: Limit = PAGE,
) -> dict[str, Any]:
    """The partners of an organisation with the partnership and its status, by partner name,
    a page at a time: pass `next_cursor` back as `cursor` (null: that was the last page)."""
    async with ctx.db.connection() as conn:
        return await queries.network(conn, organisation_id, cursor=cursor, limit=limit)


@router.post(
    "/partnerships",
    status_code=201,
    tags=["partnerships"],
    responses=problems.documented(
        R.PartnershipChanged,
        403,
        404,
        409,
        413,
        422,
        status=201,
        headers=problems.ETAG,
        description="Proposed",
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def propose_partnership(
    body: PartnershipIn, request: Request, ctx: Ctx, caller: Caller
) -> JSONResponse:
    """Propose a partnership: administrators for anyone, members for their own organisation."""
    caller.require(Role.REGISTRY_ADMIN, Role.MEMBER)
    now = ctx.clock()
    command = domain.ProposePartnership(
        partnership_id=body.partnership_id or str(uuid.uuid4()),
        organisations=(body.organisations[0], body.organisations[1]),
        kind=body.kind,
        occurred_at=body.occurred_at or now,
        programme=body.programme,
        phase=body.phase,
        fields=tuple(body.fields),
        evidence=ev.Evidence(**body.evidence.model_dump()) if body.evidence else None,
    )
    return await write(
        ctx,
        request,
        caller,
        201,
        lambda conn, meta: handlers.propose_partnership(
            conn, command, acting_for=_acting_for(caller), metadata=meta, now=now
        ),
    )


@router.get(
    "/partnerships", tags=["partnerships"], responses=problems.documented(R.PartnershipPage, 422)
)
async def list_partnerships(
    ctx: Ctx,
    caller: Caller,
    organisation: Annotated[str | None, Query(max_length=100)] = None,
    status: domain.PartnershipStatus | None = None,
    kind: domain.PartnershipKind | None = None,
    programme: Annotated[str | None, Query(max_length=200)] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    signed_year: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Partnerships by organisation (either side), status, kind, programme, country, year."""
    async with ctx.db.connection() as conn:
        return await queries.partnerships(
            conn,
            organisation=organisation,
            status=status.value if status else None,
            kind=kind.value if kind else None,
            programme=programme,
            country=country,
            signed_year=signed_year,
            cursor=cursor,
            limit=limit,
        )


@router.get(
    "/partnerships/{partnership_id}",
    tags=["partnerships"],
    responses=problems.documented(R.Partnership, 404, 422, headers=problems.ETAG),
)
async def get_partnership(
    partnership_id: PartnershipId, ctx: Ctx, caller: Caller, response: Response, as_of: AsOf = None
) -> dict[str, Any]:
    """One partnership: its two organisations, kind, programme, status with its history and
    each organisation's agreements; with `as_of`, as it stood then. Its ETag is its version."""
    async with ctx.db.connection() as conn:
        if as_of is None:
            found = await queries.partnership(conn, partnership_id)
            response.headers["ETag"] = etag(found["version"])
            return found
        state = await handlers.load_partnership(conn, partnership_id, as_of=as_of)
    if not state.exists:
        raise NotFound(f"partnership {partnership_id} did not exist at {as_of.isoformat()}")
    return {
        "partnership_id": partnership_id,
        "organisations": list(state.organisations),
        "kind": state.kind,
        "programme": state.programme,
        "phase": state.phase,
        "fields": list(state.fields),
        "status": state.status.value,
        "history": [
            {"status": s, "occurred_at": t.isoformat()} for s, t in queries.recent(state.history)
        ],
        "history_total": len(state.history),
        "agreements": [
            {
                "organisation_id": a.organisation_id,
                "to_status": a.to_status,
                "occurred_at": a.occurred_at.isoformat(),
                "actor": a.actor,
            }
            for a in queries.recent(state.agreements)
        ],
        "agreements_total": len(state.agreements),
        "version": state.version,
        "as_of": as_of.isoformat(),
    }


@router.post(
    "/partnerships/{partnership_id}/transitions",
    tags=["partnerships"],
    responses={
        **problems.documented(
            R.PartnershipChanged, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
        ),
        202: {
            "model": R.PartnershipAwaiting,
            "description": "The caller's organisation agreed; the status waits for the other's"
            " (`awaiting_agreement_of`)",
            "headers": problems.ETAG,
        },
    },
    openapi_extra=problems.IDEMPOTENT,
)
async def change_partnership_status(
    partnership_id: PartnershipId,
    body: TransitionIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Move a partnership along its lifecycle; 409 lists the transitions allowed from here.

    To `agreed` or `signed` both organisations consent: a member's request records its own
    organisation's agreement (202 with `awaiting_agreement_of` until the other organisation
    agrees too; the request that completes the pair moves it, 200). A registry administrator
    moves it at once, with `evidence` of both organisations' agreement (422 without)."""
    caller.require(Role.REGISTRY_ADMIN, Role.MEMBER)
    now = ctx.clock()
    command = domain.ChangeStatus(
        to=body.to,
        occurred_at=body.occurred_at or now,
        evidence=ev.Evidence(**body.evidence.model_dump()) if body.evidence else None,
    )

    async def use_case(conn: asyncpg.Connection, meta: Metadata) -> tuple[int, Any]:
        result = await handlers.change_partnership_status(
            conn,
            partnership_id,
            command,
            acting_for=_acting_for(caller),
            if_match=if_match,
            metadata=meta,
            now=now,
        )
        return (202 if "awaiting_agreement_of" in result else 200), result

    return await execute_write(ctx, request, caller, use_case)
