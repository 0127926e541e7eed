"""The live stream of convoy updates for screens: Server-Sent Events, resumable.

A stream lives no longer than its key: the key is checked again through the authenticator
requests use, about once a second and so at most the authenticator's cache lifetime
(`auth_cache_ttl`) after it was revoked, and a refused key ends the stream with `event: closed`
and a problem saying why."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from services.shipments import live
from services.shipments.requests import OrgFilter
from shared import problems
from shared.deps import ServiceContext, header
from shared.errors import Unauthenticated, ValidationFailed
from shared.web import Caller, Ctx

router = APIRouter(prefix="/v1", lifespan=live.lifespan)
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 1.0  # how often the key is checked again (its cache answers in between)


def _start(last_event_id: str | None, after: int | None) -> int | None:
    if last_event_id is None:
        return after
    if not last_event_id.strip().isdigit() or int(last_event_id) > 2**63 - 1:
        raise ValidationFailed(
            "Last-Event-ID must be the id of an update this stream sent (a position)",
            extra={"invalid_params": [{"name": "Last-Event-ID", "reason": "not a position"}]},
        )
    return int(last_event_id)


async def _key_refused(ctx: ServiceContext, authorization: str | None) -> str | None:
    """The closing event when the stream's key is no longer valid (revoked), else None."""
    assert ctx.auth is not None
    try:
        await ctx.auth.authenticate(authorization)
    except Unauthenticated as refused:
        problem = {
            **refused.problem(),
            "detail": f"{refused.detail}: this stream ends",
            "reason": "key revoked",
        }
        return f"event: closed\ndata: {json.dumps(problem)}\n\n"
    return None


@router.get(
    "/tracking/updates",
    tags=["tracking"],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `event: convoy-update` with the event's JSON as"
            " data, each `id` a log position; a comment line every 15 s keeps it open",
            "content": {
                "text/event-stream": {"schema": {"type": "string", "maxLength": 1_000_000_000}}
            },
        },
        **problems.problem_responses(422),
    },
    operation_id="streamTrackingUpdates",
)
async def updates(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    convoy_id: Annotated[str | None, Query(max_length=100)] = None,
    organisation: OrgFilter = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="replay from this position")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """Server-Sent Events (`event: convoy-update`), one per event of a convoy the caller may
    read, filtered by convoy or organisation. Each id is a log position: reconnect with
    `Last-Event-ID` (browsers do it themselves) to resume where the stream stopped. Without
    it, the stream starts with what happens next (or after `after`). When the key is revoked
    the stream ends within the key cache's lifetime with `event: closed`, a problem whose
    `reason` says why; a screen should not reconnect with that key."""
    start = _start(last_event_id, after)
    who = live.Filter(caller=caller, convoy_id=convoy_id, organisation=organisation)
    if start is None:
        async with ctx.db.connection() as conn:
            start = await live.head(conn)
    signal: live.SealedSignal = ctx.extras["sealed"]
    authorization = header(request, b"authorization")

    async def stream(position: int) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        quiet_since = checked = time.monotonic()
        while True:
            if time.monotonic() - checked >= RECHECK_SECONDS:
                closing = await _key_refused(ctx, authorization)
                if closing is not None:
                    yield closing
                    return
                checked = time.monotonic()
            async with ctx.db.connection() as conn:
                found, scanned = await live.updates_after(conn, position, who)
            for pos, update in found:
                yield f"id: {pos}\nevent: convoy-update\ndata: {json.dumps(update)}\n\n"
                quiet_since = time.monotonic()
            if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            if scanned == position:
                await signal.wait(POLL_SECONDS)
            position = scanned

    return StreamingResponse(
        stream(start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
