"""The live stream of convoy updates for screens: Server-Sent Events, resumable."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from services.shipments import live
from services.shipments.requests import OrgFilter
from shared.errors import ValidationFailed
from shared.web import Caller, Ctx

router = APIRouter(prefix="/v1", lifespan=live.lifespan)
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0


def _start(last_event_id: str | None, after: int | None) -> int | None:
    if last_event_id is None:
        return after
    if not last_event_id.strip().isdigit() or int(last_event_id) > 2**63 - 1:
        raise ValidationFailed(
            "Last-Event-ID must be the id of an update this stream sent (a position)",
            extra={"invalid_params": [{"name": "Last-Event-ID", "reason": "not a position"}]},
        )
    return int(last_event_id)


@router.get(
    "/tracking/updates",
    tags=["tracking"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def updates(
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
    it, the stream starts with what happens next (or after `after`)."""
    start = _start(last_event_id, after)
    who = live.Filter(caller=caller, convoy_id=convoy_id, organisation=organisation)
    if start is None:
        async with ctx.db.connection() as conn:
            start = await live.head(conn)
    signal: live.SealedSignal = ctx.extras["sealed"]

    async def stream(position: int) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        quiet_since = time.monotonic()
        while True:
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
