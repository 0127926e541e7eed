"""The live stream of convoy updates for screens: Server-Sent Events, resumable.

A stream lives no longer than its key: the key is checked again through the authenticator
requests use, about once a second and so at most the authenticator's cache lifetime
(`auth_cache_ttl`) after it was revoked, and a refused key ends the stream with `event: closed`
and a problem saying why (its `reason`: key revoked, key expired or key not valid).

A screen that resumes beyond the log's last position (its Last-Event-ID names events this log
never wrote, as after a restore from an older backup) resumes from the last position, told so
first by `event: reset`; an explicit `after` beyond it is refused (422)."""

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
from shared.auth import KeyExpired, KeyRevoked
from shared.deps import ServiceContext, header
from shared.domain_checks import ascii_digits, invalid
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


def _last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    # the header as sent, surrounding blanks aside; a position is a bigint (at most 19 digits)
    position = ascii_digits(value.strip(" \t"), max_digits=19)
    if position is None or position > 2**63 - 1:
        raise invalid(
            "Last-Event-ID must be the id of an update this stream sent (a position)",
            name="Last-Event-ID",
            reason="not a position",
        )
    return position


def _resume(head: int, last_event_id: int | None, after: int | None) -> tuple[int, str]:
    """(the position the stream sends updates after, what it sends before them).

    Last-Event-ID beyond `head` names events never written to this log (it was restored from
    an older backup, or the id came from another deployment): the stream resumes from the
    head, its first event `reset` saying so, with the head as its id so that the next
    reconnection resumes from there. An explicit `after` beyond the head is refused."""
    if last_event_id is not None:
        if last_event_id <= head:
            return last_event_id, ""
        reset = {
            "position": head,
            "last_event_id": last_event_id,
            "detail": f"Last-Event-ID {last_event_id} is beyond this log's last position"
            f" {head}: the updates after {head} were never written here; the stream resumes"
            " from there, reload what you show",
        }
        return head, f"id: {head}\nevent: reset\ndata: {json.dumps(reset)}\n\n"
    if after is None:
        return head, ""
    if after > head:
        raise invalid(
            f"after: position {after} is beyond this log's last position {head}",
            name="after",
            reason="beyond the last position",
        )
    return after, ""


_REASONS: tuple[tuple[type[Unauthenticated], str], ...] = (
    (KeyRevoked, "key revoked"),
    (KeyExpired, "key expired"),
)


async def _key_refused(ctx: ServiceContext, authorization: str | None) -> str | None:
    """The closing event when the stream's key is no longer accepted (revoked, expired, or not
    valid: rotated, or gone), else None."""
    assert ctx.auth is not None
    try:
        await ctx.auth.authenticate(authorization)
    except Unauthenticated as refused:
        problem = {
            **refused.problem(),
            "detail": f"{refused.detail}: this stream ends",
            "reason": next(
                (reason for kind, reason in _REASONS if isinstance(refused, kind)),
                "key not valid",
            ),
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
            " data, each `id` a log position; a comment line every 15 s keeps it open;"
            " `event: reset` first when Last-Event-ID lies beyond the log's last position;"
            " `event: closed` last when the key is no longer accepted",
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
        int | None,
        Query(
            ge=0,
            le=2**63 - 1,
            description="replay from this position (422 beyond the log's last position)",
        ),
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """Server-Sent Events (`event: convoy-update`), one per event of a convoy the caller may
    read, filtered by convoy or organisation. Each id is a log position: reconnect with
    `Last-Event-ID` (browsers do it themselves) to resume where the stream stopped. Without
    it, the stream starts with what happens next (or after `after`; `after` beyond the log's
    last position is a 422). A Last-Event-ID beyond the log's last position (the log was
    restored from an older backup: those updates were never written here) resumes from that
    last position, the stream's first event being `event: reset` (its id that position, its
    data `position`, `last_event_id` and `detail`): reload what the screen shows. When the key
    is revoked, expires or is no longer valid (rotated), the stream ends within the key
    cache's lifetime with `event: closed`, a problem whose `reason` says why (`key revoked`,
    `key expired`, `key not valid`); a screen should not reconnect with that key."""
    resume_id = _last_event_id(last_event_id)
    who = live.Filter(caller=caller, convoy_id=convoy_id, organisation=organisation)
    async with ctx.db.connection() as conn:
        head = await live.head(conn)
    start, opening = _resume(head, resume_id, after)
    signal: SealedSignal = ctx.extras["sealed"]
    authorization = header(request, b"authorization")

    async def stream(position: int) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        if opening:
            yield opening
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
