"""Partnership routes: propose, list, read (now or as of an instant), and move along the
lifecycle. HTTP <-> handlers and queries."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from services.registry import commands, domain, queries, views
from services.registry import events as ev
from services.registry import responses as R
from services.registry.auth import Member, acting_for
from services.registry.requests import (
    AsOf,
    EvidenceIn,
    IfMatch,
    PartnershipId,
    PartnershipIn,
    TransitionIn,
)
from shared import problems, route_docs
from shared.deps import etag
from shared.errors import NotFound
from shared.route_params import Page, paged
from shared.web import Caller, Ctx, write

router = route_docs.Router(prefix="/v1", tags=["partnerships"])


@router.create("/partnerships", R.PartnershipChanged, "Proposed")
async def propose_partnership(
    body: PartnershipIn, request: Request, ctx: Ctx, caller: Member
) -> JSONResponse:
    """Propose a partnership: administrators for anyone, members for their own organisation."""
    proposal = domain.ProposePartnership(
        partnership_id=body.partnership_id or str(uuid.uuid4()),
        organisations=(body.organisations[0], body.organisations[1]),
        kind=body.kind,
        occurred_at=body.occurred_at or ctx.clock(),
        programme=body.programme,
        phase=body.phase,
        fields=tuple(body.fields),
        evidence=_evidence(body.evidence),
    )
    command = commands.ProposePartnership(proposal, acting_for=acting_for(caller))
    return await write(ctx, request, caller, 201, command)


@router.read("/partnerships", R.PartnershipPage, 422)
async def list_partnerships(
    ctx: Ctx,
    caller: Caller,
    page: Annotated[Page, paged(50)],
    organisation: Annotated[str | None, Query(max_length=100)] = None,
    status: domain.PartnershipStatus | None = None,
    kind: domain.PartnershipKind | None = None,
    programme: Annotated[str | None, Query(max_length=200)] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    signed_year: Annotated[int | None, Query(ge=1900, le=2100)] = None,
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
            **page.args(),
        )


@router.read("/partnerships/{partnership_id}", R.Partnership, 404, 422, etag=True)
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
        state = await queries.partnership_as_of(conn, partnership_id, as_of)
    if not state.exists:
        raise NotFound(f"partnership {partnership_id} did not exist at {as_of.isoformat()}")
    return views.partnership_as_of(state, as_of=as_of)


@router.change(
    "/partnerships/{partnership_id}/transitions",
    R.PartnershipChanged,
    more={
        202: {
            "model": R.PartnershipAwaiting,
            "description": "The caller's organisation agreed; the status waits for the other's"
            " (`awaiting_agreement_of`)",
            "headers": problems.ETAG,
        }
    },
)
async def change_partnership_status(
    partnership_id: PartnershipId,
    body: TransitionIn,
    request: Request,
    ctx: Ctx,
    caller: Member,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Move a partnership along its lifecycle; 409 lists the transitions allowed from here.

    To `agreed` or `signed` both organisations consent: a member's request records its own
    organisation's agreement (202 with `awaiting_agreement_of` until the other organisation
    agrees too; the request that completes the pair moves it, 200). A registry administrator
    moves it at once, with `evidence` of both organisations' agreement (422 without)."""
    change = domain.ChangeStatus(
        to=body.to, occurred_at=body.occurred_at or ctx.clock(), evidence=_evidence(body.evidence)
    )
    command = commands.ChangePartnershipStatus(
        partnership_id, change, acting_for=acting_for(caller), if_match=if_match
    )
    return await write(ctx, request, caller, _status_of_change, command)


def _status_of_change(result: dict[str, Any]) -> int:
    """202 while the other organisation has not agreed, else 200."""
    return 202 if "awaiting_agreement_of" in result else 200


def _evidence(evidence: EvidenceIn | None) -> ev.Evidence | None:
    return None if evidence is None else ev.Evidence(**evidence.model_dump())
