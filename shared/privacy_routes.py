"""Every service's personal-data routes (`/v1/privacy`): find a person's subjects, export what
is held about one (GDPR article 15), erase one (article 17). See shared/privacy.py and
shared/privacy_subjects.py.

Who: a registry administrator (platform operator) for any subject; otherwise the organisation
that recorded the person (its member, logistics or org_admin keys), and 404 for any other
organisation's subject, as if it did not exist. The name searched for travels in the request
body, never in the URL (URLs end up in access logs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from shared import privacy, privacy_subjects
from shared.auth import Principal, Role
from shared.deps import Caller, Ctx, metadata_for
from shared.errors import Forbidden, NotFound
from shared.problems import problem_responses
from shared.responses import Out

TAG = "privacy"
SubjectId = Annotated[str, Path(pattern=privacy.SUBJECT_ID, max_length=100)]
_RECORDERS = (Role.MEMBER, Role.LOGISTICS, Role.ORG_ADMIN)


class SearchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Olha Kravchenko", "organisation": "kharkiv"}]},
    )

    name: str = Field(min_length=1, max_length=200, description="the person's name, as recorded")
    organisation: str | None = Field(
        default=None,
        max_length=100,
        description="the organisation that recorded them (operators: any; others: their own,"
        " the default)",
    )


class ErasureIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"legal_basis": "gdpr-art-17"}]}
    )

    legal_basis: privacy_subjects.LegalBasis = Field(
        description="gdpr-art-17: the person asked; gdpr-art-21: they objected; retention,"
        " legal-obligation, other"
    )


class SubjectOut(Out):
    subject_id: str
    organisation_id: str = Field(description="the organisation that recorded the person")
    created_at: datetime
    last_recorded_at: datetime
    erased: bool
    erased_at: datetime | None
    erased_by: str | None = Field(description="who asked for the erasure")
    legal_basis: str | None


class SubjectList(Out):
    items: list[SubjectOut]


class OccurrenceOut(Out):
    event_id: str
    event_type: str
    stream_id: str
    recorded_at: datetime
    persons: list[dict[str, Any]] = Field(
        description="the subject as this event recorded them: decrypted, or `(erased)`"
    )


class SubjectExport(SubjectOut):
    service: str
    occurrences: list[OccurrenceOut]


def _operator(caller: Principal) -> bool:
    return caller.has(Role.REGISTRY_ADMIN)


async def _handled(
    conn: asyncpg.Connection, caller: Principal, subject_id: str
) -> privacy_subjects.Subject:
    """The subject, if the caller may handle it; NotFound otherwise (as if it did not exist)."""
    subject = await privacy_subjects.subject(conn, subject_id)
    if subject is None or not (
        _operator(caller)
        or (caller.organisation == subject.organisation_id and caller.has(*_RECORDERS))
    ):
        raise NotFound(f"no subject {subject_id} recorded by {caller.organisation}")
    return subject


def router() -> APIRouter:
    r = APIRouter(prefix="/v1/privacy", tags=[TAG])

    @r.post(
        "/subjects/search",
        operation_id="findSubjects",
        response_model=SubjectList,
        summary="Find the subjects recorded under a person's name",
        description="The subjects (not erased) an organisation recorded under this name here:"
        " each service keeps its own subjects, so ask every service.",
        responses=problem_responses(403, 422),
    )
    async def find_subjects(body: SearchIn, ctx: Ctx, caller: Caller) -> dict[str, Any]:
        organisation = body.organisation
        if not _operator(caller):
            if not caller.has(*_RECORDERS):
                raise Forbidden("finding people takes a member, logistics or org_admin key")
            if organisation not in (None, caller.organisation):
                raise Forbidden(f"{caller.organisation} may look only among its own records")
            organisation = caller.organisation
        async with ctx.db.connection() as conn:
            found = await privacy_subjects.find(conn, organisation=organisation, name=body.name)
        return {"items": [s.json() for s in found]}

    @r.get(
        "/subjects/{subject_id}",
        operation_id="exportSubject",
        response_model=SubjectExport,
        summary="Everything this service holds about a person (access request)",
        description="The subject and every event that recorded them, decrypted (or `(erased)`"
        " once erased).",
        responses=problem_responses(404, 422),
    )
    async def export_subject(subject_id: SubjectId, ctx: Ctx, caller: Caller) -> dict[str, Any]:
        async with ctx.db.connection() as conn:
            subject = await _handled(conn, caller, subject_id)
            found = await privacy_subjects.occurrences(conn, subject_id)
        return {**subject.json(), "service": ctx.service, "occurrences": found}

    @r.post(
        "/subjects/{subject_id}/erasure",
        operation_id="eraseSubject",
        response_model=SubjectOut,
        summary="Erase a person: destroy their key",
        description="Their personal fields become unreadable everywhere (log, broker copies,"
        " read models, exports), and a `privacy.subject-erased` event records who asked, when"
        " and on what basis. The log still verifies. Erasing again answers the first erasure.",
        responses=problem_responses(404, 422),
    )
    async def erase_subject(
        subject_id: SubjectId, body: ErasureIn, ctx: Ctx, caller: Caller
    ) -> dict[str, Any]:
        async with ctx.db.transaction() as conn:
            await _handled(conn, caller, subject_id)
            erased = await privacy_subjects.erase(
                conn,
                subject_id,
                requested_by=caller.organisation,
                legal_basis=body.legal_basis,
                metadata=metadata_for(caller),
                now=ctx.clock(),
            )
        if erased is None:
            raise NotFound(f"no subject {subject_id}")
        if ctx.notifier is not None:
            ctx.notifier.poke()
        return erased.json()

    return r
