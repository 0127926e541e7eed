"""The live stream of convoy updates for screens: Server-Sent Events, resumable.

A stream lives no longer than its key: the key is checked again through the authenticator
requests use, about once a second and so at most the authenticator's cache lifetime
(`auth_cache_ttl`) after it was revoked, and a refused key ends the stream with `event: closed`
and a problem saying why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse

from services.shipments.queries import live
from services.shipments.requests import OrgFilter
from shared import problems
from shared.deps import ServiceContext, header
from shared.domain_checks import invalid
from shared.errors import Unauthenticated
from shared.web import Caller, Ctx

log = logging.getLogger("twinaid.shipments.live")
CHANNEL = "twinaid_sealed"


class SealedSignal:
    """One LISTEN connection per process, waking every open stream when the sealer runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: asyncpg.Connection | None = None
        self._waiters: set[asyncio.Event] = set()

    async def start(self) -> None:
        try:
            self._conn = await asyncpg.connect(self.url)
            await self._conn.add_listener(CHANNEL, self._wake)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("no NOTIFY for live updates, polling only: %r", exc)
            self._conn = None

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    def _wake(self, *_: object) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def wait(self, timeout: float) -> None:
        """Until the next sealing, or `timeout` seconds."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout)
        finally:
            self._waiters.discard(waiter)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: ServiceContext = app.state.ctx
    signal = SealedSignal(ctx.settings.database_url)
    await signal.start()
    ctx.extras["sealed"] = signal
    try:
        yield
    finally:
        await signal.stop()


router = APIRouter(prefix="/v1", lifespan=lifespan)
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 1.0  # how often the key is checked again (its cache answers in between)


def _start(last_event_id: str | None, after: int | None) -> int | None:
    if last_event_id is None:
        return after
    if not last_event_id.strip().isdigit() or int(last_event_id) > 2**63 - 1:
        raise invalid(
            "Last-Event-ID must be the id of an update this stream sent (a position)",
            name="Last-Event-ID",
            reason="not a position",
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
    signal: SealedSignal = ctx.extras["sealed"]
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
