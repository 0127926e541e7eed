"""Needs: post, revise, close, cancel; read with coverage, as of an instant, and their history."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Query, Response
from fastapi.responses import JSONResponse

from services.pledges import auth, commands, domain, handlers, queries
from services.pledges import responses as R
from services.pledges.api import history
from services.pledges.api.writing import Changing, Creating
from services.pledges.auth import Viewing
from services.pledges.requests import (
    AsOf,
    EndIn,
    NeedIn,
    NeedRevisionIn,
    NeedStatus,
    RecordId,
)
from shared import route_docs
from shared.deps import etag
from shared.route_params import Page, paged
from shared.web import Caller, Ctx

router = route_docs.Router(prefix="/v1", tags=["needs"])


@router.create("/needs", R.NeedChanged, "Posted", errors=(403, 409, 413, 422))
async def post_need(body: NeedIn, w: Creating) -> JSONResponse:
    """Post a need for your own organisation: goods (quantity and unit) or money (amount in
    minor units and currency), with a priority, what it serves and an optional deadline."""
    recipient = body.recipient_id or w.caller.organisation
    need = domain.PostNeed(
        # kind, category, description, figures, priority, deadline, note, contact as validated
        **body.model_dump(exclude={"need_id", "recipient_id", "serves"}),
        need_id=body.need_id or str(uuid.uuid4()),
        recipient_id=recipient,
        serves=tuple(body.serves),
    )
    command = commands.PostNeed(need=need, acting_for=w.acting_as(recipient))
    return await w.send(201, command)


@router.read("/needs", R.NeedPage, 422)
async def list_needs(
    ctx: Ctx,
    caller: Caller,
    viewer: Viewing,
    page: Annotated[Page, paged(50)],
    recipient: Annotated[str | None, Query(max_length=100)] = None,
    status: NeedStatus | None = None,
    category: domain.Category | None = None,
    priority: domain.Priority | None = None,
) -> dict[str, Any]:
    """Needs, newest first, with their coverage; filter by recipient, status (open,
    partly_covered, covered, closed, cancelled), category and priority."""
    async with ctx.db.connection() as conn:
        return await queries.needs(
            conn,
            recipient=recipient,
            status=status,
            category=category.value if category else None,
            priority=priority.value if priority else None,
            viewer=viewer,
            **page.args(),
        )


@router.read("/needs/{need_id}", R.Need, 404, 422, etag=True)
async def get_need(
    need_id: RecordId,
    ctx: Ctx,
    caller: Caller,
    viewer: Viewing,
    response: Response,
    as_of: AsOf = None,
) -> Any:
    """One need with its coverage (target, pledged, committed, delivered, gap). With `as_of`,
    the need as the recipient had stated it then, in the same keys: coverage is null (the
    reports give it for a period), status is null unless the need had ended, and `state` says
    active, closed or cancelled. Its ETag is its version."""
    async with ctx.db.connection() as conn:
        if as_of is None:
            found = await queries.need(conn, need_id, viewer=viewer)
            response.headers["ETag"] = etag(found["version"])
            return found
        state, history = await handlers.need_as_of(conn, need_id, as_of=as_of)
        return await queries.need_as_of(conn, state, history, as_of=as_of, viewer=viewer)


@router.read(
    "/needs/{need_id}/history", R.NeedHistory, 403, 404, 422, operation_id="getNeedHistory"
)
async def need_history(
    need_id: RecordId, ctx: Ctx, caller: Caller, page: history.Page
) -> dict[str, Any]:
    """Every event of the need in version order, a page at a time: pass `next_after` back as
    `after` for the next page (null: that was the last). For the recipient, auditors and
    administrators."""

    def allowed(need: domain.Need) -> bool:
        auth.require_party(caller, domain.require_need(need).recipient_id)
        return False  # those who see the need's contact: opened, or "(erased)"

    return {"need_id": need_id, **await page.of(ctx, handlers.NEEDS, need_id, allowed)}


@router.change("/needs/{need_id}/revisions", R.NeedEnded)
async def revise_need(
    need_id: RecordId,
    body: NeedRevisionIn,
    w: Changing,
) -> JSONResponse:
    """Revise a need, with a reason: description, quantity or amount, priority, what it serves,
    deadline, internal note. The unit, currency and kind stay: post a new need instead."""
    changes = body.model_dump(exclude_unset=True, exclude={"reason", "occurred_at"})
    if "serves" in changes:
        changes["serves"] = tuple(s.value for s in body.serves or ())
    revision = domain.ReviseNeed(changes=changes, reason=body.reason, occurred_at=body.occurred_at)
    return await w.send(200, commands.ReviseNeed(**w.on(need_id=need_id), revision=revision))


def _ending(to: domain.NeedState) -> Callable[..., Awaitable[JSONResponse]]:
    """The route that closes or cancels a need (the two differ only in `to`)."""

    async def end(
        need_id: RecordId,
        body: EndIn,
        w: Changing,
    ) -> JSONResponse:
        command = commands.EndNeed(**w.on(need_id=need_id), to=to, **body.model_dump())
        return await w.send(200, command)

    return end


ENDINGS = {
    "close": (
        domain.NeedState.CLOSED,
        "The recipient is done with the need (usually covered); pledges no longer answer it.",
    ),
    "cancel": (
        domain.NeedState.CANCELLED,
        "The need no longer exists; pledges already made keep their lines.",
    ),
}
for _verb, (_to, _doc) in ENDINGS.items():
    _path = f"/needs/{{need_id}}/{_verb}"
    router.change(_path, R.NeedEnded, name=f"{_verb}_need", description=_doc)(_ending(_to))
