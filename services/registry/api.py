"""Registry routes: HTTP <-> handlers and queries. No SQL, no rules."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.registry import domain, handlers, queries
from shared.auth import Role
from shared.events import Metadata
from shared.web import Caller, Ctx, execute_write

router = APIRouter(prefix="/v1", tags=["organisations"])
Name = Annotated[str, Field(min_length=1, max_length=200)]
OrgId = Annotated[str, Path(min_length=1, max_length=100)]


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organisation_id: Annotated[
        str | None, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    ] = None
    name: Name
    kind: domain.OrganisationKind
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    region: Annotated[str | None, Field(max_length=200)] = None
    aliases: Annotated[list[Name], Field(max_length=50)] = []


@router.post("/organisations", status_code=201)
async def register_organisation(
    body: OrganisationIn, request: Request, ctx: Ctx, caller: Caller
) -> JSONResponse:
    """Register an organisation (registry administrators)."""
    caller.require(Role.REGISTRY_ADMIN)
    command = domain.RegisterOrganisation(
        organisation_id=body.organisation_id or str(uuid.uuid4()),
        name=body.name,
        kind=body.kind,
        country=body.country,
        region=body.region,
        aliases=tuple(body.aliases),
    )

    async def use_case(conn: asyncpg.Connection, meta: Metadata) -> tuple[int, Any]:
        return 201, await handlers.register_organisation(
            conn, command, metadata=meta, now=ctx.clock()
        )

    return await execute_write(ctx, request, caller, use_case)


@router.get("/organisations/{organisation_id}")
async def get_organisation(organisation_id: OrgId, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    async with ctx.db.connection() as conn:
        return await queries.organisation(conn, organisation_id)
