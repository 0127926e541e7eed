"""Organisation routes: register, search, read (now or as of an instant), rename, aliases,
corrections, contacts, and the network of partners around one. HTTP <-> handlers and queries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from services.registry import commands, domain, handlers, projections, queries, views
from services.registry import privacy as personal
from services.registry import responses as R
from services.registry.auth import Admin, ContactsEditor, sees_contacts
from services.registry.requests import (
    AliasIn,
    AsOf,
    ContactsIn,
    CorrectionIn,
    IfMatch,
    OrganisationIn,
    OrgId,
    RenameIn,
)
from shared import route_batches, route_docs
from shared.auth import Principal
from shared.commands import Command
from shared.deps import etag
from shared.events import Metadata
from shared.route_params import Page, paged
from shared.web import Caller, Ctx, ServiceContext, write


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Before the first request: the name skeletons of rows written before they were kept
    (the namesake probe looks them up; only Python's ICU computes them)."""
    ctx: ServiceContext = app.state.ctx
    async with ctx.db.connection() as conn:
        await projections.fill_name_skeletons(conn)
    yield


router = route_docs.Router(prefix="/v1", lifespan=_lifespan)
TAGS = ["organisations"]  # of every route here but the network around one
PAGE = 100  # the default page of the organisation network (at most pagination.MAX_LIMIT)


@router.create(
    "/organisations",
    R.OrganisationChanged,
    "Registered",
    errors=(403, 409, 413, 422),
    tags=TAGS,
)
async def register_organisation(
    body: OrganisationIn, request: Request, ctx: Ctx, caller: Admin
) -> JSONResponse:
    """Register an organisation (registry administrators). A namesake in the same country is
    refused with 409 naming it, unless `distinct` is true."""
    registration = domain.RegisterOrganisation(
        # name, kind, country, region, coordinates (a dict) and parent as validated
        **body.model_dump(exclude={"organisation_id", "aliases", "contacts", "distinct"}),
        organisation_id=body.organisation_id or str(uuid.uuid4()),
        aliases=tuple(body.aliases),
        contacts=tuple(c.model_dump() for c in body.contacts),
    )
    command = commands.RegisterOrganisation(registration, distinct=body.distinct)

    async def attempt(meta: Metadata) -> dict[str, Any] | None:
        # without Idempotency-Key (write() then never attempts), registrations that arrive
        # together run in one transaction (group commit), each decided as alone
        if not handlers.batchable(command):
            return None
        return await route_batches.join(
            ctx, "registrations", partial(_register_together, ctx), command, meta
        )

    return await write(ctx, request, caller, 201, command, attempt=attempt)


async def _register_together(ctx: ServiceContext, batch: list[handlers.Batched]) -> list[Any]:
    """Registrations that arrived together, in one transaction (handlers/registrations.py)."""
    together = partial(handlers.register_together, batch=batch)
    return await route_batches.in_transaction(ctx, together)


@router.read("/organisations", R.OrganisationPage, 422, tags=TAGS)
async def search_organisations(
    ctx: Ctx,
    caller: Caller,
    page: Annotated[Page, paged(50)],
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    kind: domain.OrganisationKind | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Search by name or alias (case- and accent-insensitive), kind, country and region."""
    async with ctx.db.connection() as conn:
        return await queries.search_organisations(
            conn,
            q=q,
            kind=kind.value if kind else None,
            country=country,
            region=region,
            **page.args(),
        )


@router.read("/organisations/{organisation_id}", R.Organisation, 404, 422, etag=True, tags=TAGS)
async def get_organisation(
    organisation_id: OrgId, ctx: Ctx, caller: Caller, response: Response, as_of: AsOf = None
) -> dict[str, Any]:
    """One organisation; contacts only for itself and registry administrators. Its ETag is its
    version: send it in If-Match to update only what you read."""
    contacts = sees_contacts(caller, organisation_id)
    async with ctx.db.connection() as conn:
        if as_of is None:
            found = await queries.organisation(conn, organisation_id, with_contacts=contacts)
            if contacts:  # sealed in the read model: opened (or "(erased)") for those who see them
                found["contacts"] = await personal.shown(conn, found["contacts"])
            response.headers["ETag"] = etag(found["version"])
            return found
        state = domain.require_existing(
            await queries.organisation_as_of(conn, organisation_id, as_of)
        )
        shown = await personal.shown(conn, state.contacts) if contacts else None
    return views.organisation_as_of(state, contacts=shown, as_of=as_of)


@dataclass(frozen=True, slots=True)
class OrganisationWrite:
    """A write to an existing organisation, by a caller allowed to make it: which one, who,
    and the version they read (If-Match)."""

    organisation_id: str
    request: Request
    ctx: ServiceContext
    caller: Principal
    if_match: int | None

    async def send(self, command: Command) -> JSONResponse:
        return await write(self.ctx, self.request, self.caller, 200, command)


async def _by_admin(
    organisation_id: OrgId, request: Request, ctx: Ctx, caller: Admin, if_match: IfMatch = None
) -> OrganisationWrite:
    return OrganisationWrite(organisation_id, request, ctx, caller, if_match)


async def _by_contacts_editor(
    organisation_id: OrgId,
    request: Request,
    ctx: Ctx,
    caller: ContactsEditor,
    if_match: IfMatch = None,
) -> OrganisationWrite:
    return OrganisationWrite(organisation_id, request, ctx, caller, if_match)


ByAdmin = Annotated[OrganisationWrite, Depends(_by_admin)]
ByContactsEditor = Annotated[OrganisationWrite, Depends(_by_contacts_editor)]


@router.change("/organisations/{organisation_id}/rename", R.OrganisationChanged, tags=TAGS)
async def rename_organisation(body: RenameIn, to: ByAdmin) -> JSONResponse:
    """Rename (registry administrators); the previous name stays findable as an alias. A
    namesake of the new name in the organisation's country (another organisation known by a
    name that looks like it) is refused with 409 naming it, unless `distinct` is true. The
    previous name is kept as an alias: an organisation already known by as many aliases as it
    may have is a 409 naming the limit (`max_aliases`)."""
    rename = domain.RenameOrganisation(name=body.name, reason=body.reason)
    command = commands.RenameOrganisation(
        to.organisation_id, rename, to.if_match, distinct=body.distinct
    )
    return await to.send(command)


@router.change("/organisations/{organisation_id}/aliases", R.OrganisationChanged, tags=TAGS)
async def add_alias(body: AliasIn, to: ByAdmin) -> JSONResponse:
    """Record another name or spelling (registry administrators). A namesake of the alias in
    the organisation's country is refused with 409 naming it, unless `distinct` is true. An
    organisation already known by as many aliases as it may have is a 409 naming the limit
    (`max_aliases`)."""
    alias = domain.AddAlias(alias=body.alias)
    command = commands.AddAlias(to.organisation_id, alias, to.if_match, distinct=body.distinct)
    return await to.send(command)


@router.change("/organisations/{organisation_id}/corrections", R.OrganisationChanged, tags=TAGS)
async def correct_organisation(body: CorrectionIn, to: ByAdmin) -> JSONResponse:
    """Correct kind, country, region, coordinates or parent, with a reason (administrators).
    A new country where another organisation is known by a name that looks like one of this
    one's (its name or an alias) is refused with 409 naming it, unless `distinct` is true; a
    parent that is under the organisation (a cycle) is refused with 422."""
    changes = body.model_dump(exclude_unset=True, exclude={"reason", "distinct"}, mode="json")
    correction = domain.CorrectOrganisation(changes=changes, reason=body.reason)
    command = commands.CorrectOrganisation(
        to.organisation_id, correction, to.if_match, distinct=body.distinct
    )
    return await to.send(command)


@router.change(
    "/organisations/{organisation_id}/contacts", R.OrganisationChanged, method="put", tags=TAGS
)
async def change_contacts(body: ContactsIn, to: ByContactsEditor) -> JSONResponse:
    """Replace the contacts (the organisation's own members or administrators)."""
    contacts = tuple(c.model_dump() for c in body.contacts)
    return await to.send(commands.ChangeContacts(to.organisation_id, contacts, to.if_match))


@router.read(
    "/organisations/{organisation_id}/network",
    R.Network,
    404,
    422,
    tags=["partnerships"],
    operation_id="getOrganisationNetwork",
)
async def organisation_network(
    organisation_id: OrgId, ctx: Ctx, caller: Caller, page: Annotated[Page, paged(PAGE)]
) -> dict[str, Any]:
    """The partners of an organisation with the partnership and its status, by partner name,
    a page at a time: pass `next_cursor` back as `cursor` (null: that was the last page)."""
    async with ctx.db.connection() as conn:
        return await queries.network(conn, organisation_id, **page.args())
