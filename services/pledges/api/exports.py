"""Exports: IATI 2.03 activity XML of an organisation or a partnership (formats/)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.pledges import queries
from services.pledges.formats import iati, iati_xml
from shared import problems
from shared.domain_checks import invalid
from shared.errors import NotFound
from shared.web import Caller, Ctx

router = APIRouter(prefix="/v1", tags=["exports"])

Id = Annotated[str | None, Query(max_length=100)]


@router.get(
    "/exports/iati",
    response_model=None,
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/xml": {"schema": {"type": "string", "maxLength": 100_000_000}}
            },
            "description": "IATI 2.03 XML",
        },
        **problems.problem_responses(404, 422),
    },
    operation_id="exportIati",
)
async def iati_export(
    ctx: Ctx, caller: Caller, organisation: Id = None, partnership: Id = None
) -> Response:
    """IATI 2.03 activity XML of one organisation (its needs, the pledges it made or received)
    or one partnership (pledges made under it, its parties' needs): needs and pledges as
    activities, their pledges, commitments and money or goods that arrived as transactions
    (docs/exports.md, "IATI"). Like the reports, readable with any key; internal notes and
    contacts are never exported."""
    if (organisation is None) == (partnership is None):
        detail = "name either organisation or partnership (one of them)"
        raise invalid(detail, name="organisation", reason=detail)
    async with ctx.db.connection() as conn:
        if organisation is not None and not await iati.organisation_known(conn, organisation):
            raise NotFound(f"organisation {organisation} is not in the registry")
        if partnership is not None and await queries.partnership(conn, partnership) is None:
            raise NotFound(f"partnership {partnership} is not in the registry")
        data = await iati.load(conn, organisation=organisation, partnership=partnership)
    subject = f"organisation {organisation}" if organisation else f"partnership {partnership}"
    if data.empty:
        raise NotFound(f"{subject} has no needs or pledges to publish")
    name = f"iati-{organisation or partnership}.xml"
    return Response(
        iati_xml.document(data, generated_at=ctx.clock()),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
