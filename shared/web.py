"""The HTTP side every service shares: the app factory and idempotent writes (the edge
middleware every request passes first is shared/edge.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import (
    contract_routes,
    edge,
    idempotency,
    instants,
    json_body,
    logs,
    openapi,
    privacy_routes,
    problems,
    routes,
    runtime,
    webhook_routes,
)
from shared import db as dbmod
from shared.auth import Authenticator, Principal
from shared.commands import Command, Handlers
from shared.deps import Caller, Ctx, ServiceContext, etag, header, metadata_for, utcnow
from shared.errors import PreconditionFailed, TwinaidError, check_if_match
from shared.event_store import ConcurrencyConflict, PostgresEventStore
from shared.events import Metadata
from shared.metrics import Metrics, metrics_only
from shared.metrics import serve as serve_metrics
from shared.notify import Notifier
from shared.projections import Projection
from shared.ratelimit import RateLimiter
from shared.repository import PostgresUnitOfWork
from shared.settings import Settings

# a write that lost a race to another writer of its record, without If-Match: run again up to
# this many times (each lost race is another writer's commit: N writers at once all get through
# with N - 1), after a jittered pause that doubles from RACE_PAUSE seconds up to RACE_PAUSE_MAX
RACE_RETRIES = 10
RACE_PAUSE = 0.002
RACE_PAUSE_MAX = 0.05
__all__ = [
    "Caller",
    "Ctx",
    "ServiceContext",
    "create_app",
    "execute_write",
    "utcnow",
    "write",
]


UseCase = Callable[[asyncpg.Connection, Metadata], Awaitable[tuple[int, Any]]]
# A use case as one statement, atomic without a transaction around it (it takes its own
# connection, or joins a group commit: shared/batching.py); None when it cannot decide alone,
# and then it wrote nothing.
Attempt = Callable[[Metadata], Awaitable[tuple[int, Any] | None]]


async def execute_write(
    ctx: ServiceContext,
    request: Request,
    principal: Principal,
    use_case: UseCase,
    *,
    attempt: Attempt | None = None,
    if_match: bool = True,
) -> JSONResponse:
    """Run one write use case in one transaction, honouring Idempotency-Key (and If-Match
    unless `if_match` is False: a route that takes none ignores the header).

    The stored answer is written in the same transaction as the events, so a retried request
    after a timeout gets the first answer and appends nothing. Without a key, `attempt` (the
    use case's one-statement form) runs first, outside any transaction: BEGIN and COMMIT are
    two round trips of their own; the use case runs when the attempt cannot decide.
    """
    raw_key = header(request, b"idempotency-key")
    key = idempotency.check_key(raw_key) if raw_key is not None else None
    digest = b""
    if key is not None:
        digest = idempotency.request_hash(
            request.method, request.scope["path"], await request.body()
        )
        if (replayed := await _replayed(ctx, principal, key, digest)) is not None:
            return replayed
    meta = metadata_for(principal, idempotency_key=key)
    # a caller that did not condition on a version (no If-Match, or `*`) asked for its write
    # whatever the record's version: a race lost to another writer is run again, on the state
    # that writer left, instead of being answered 409; with If-Match on a version, the race
    # lost is answered 412 as a stale If-Match is (the version it named is gone)
    condition = header(request, b"if-match") if if_match else None
    retries = RACE_RETRIES if condition is None or condition.strip() == "*" else 0
    try:
        for tries_left in range(retries, -1, -1):
            try:
                status, body = await _run_once(
                    ctx, principal, use_case, attempt, meta, key=key, digest=digest
                )
                break
            except ConcurrencyConflict as lost:
                if tries_left == 0:
                    if retries == 0 and (stale := await _stale_if_match(ctx, lost)) is not None:
                        raise stale from lost
                    raise
                # the race may have been lost to this request's own twin: answer as it did
                if (
                    key is not None
                    and (replayed := await _replayed(ctx, principal, key, digest)) is not None
                ):
                    return replayed
                pause = min(RACE_PAUSE * 2 ** (retries - tries_left), RACE_PAUSE_MAX)
                await asyncio.sleep(random.uniform(0, pause))  # noqa: S311 (a jitter, no secret)
    except (asyncpg.UniqueViolationError, TwinaidError):
        if key is None:
            raise
        # A concurrent twin of this request may have won the race (and made ours conflict):
        # answer as it did.
        if (replayed := await _replayed(ctx, principal, key, digest)) is None:
            raise
        return replayed
    if ctx.notifier is not None:
        ctx.notifier.poke()  # committed: wake the relay
    return _answer(body, status)


async def _stale_if_match(
    ctx: ServiceContext, lost: ConcurrencyConflict
) -> PreconditionFailed | None:
    """What answers a change conditioned on a version (If-Match) that lost the race to
    another writer of its record: the version it named is gone, as for a stale If-Match (412
    naming the record's version now, RFC 9110), though it was current when the change was
    decided. None for a race to create a record (no version was named) or a record still
    at that version."""
    stream_id = lost.extra.get("stream_id")
    if lost.expected == 0 or not isinstance(stream_id, str):
        return None
    async with ctx.db.connection() as conn:
        current = await PostgresEventStore(conn).current_version(stream_id)
    try:
        check_if_match(current, lost.expected)
    except PreconditionFailed as refused:
        return refused
    return None


async def _run_once(
    ctx: ServiceContext,
    principal: Principal,
    use_case: UseCase,
    attempt: Attempt | None,
    meta: Metadata,
    *,
    key: str | None,
    digest: bytes,
) -> tuple[int, Any]:
    """One try of a write: its one-statement form when it has one (no key), else the use
    case in a transaction of its own, with the stored answer under the key."""
    if attempt is not None and key is None:
        done = await attempt(meta)
        if done is not None:
            return done
    async with ctx.db.transaction() as conn:
        status, body = await use_case(conn, meta)
        if key is not None:
            await idempotency.remember(
                conn,
                caller=principal,
                key=key,
                digest=digest,
                response=idempotency.StoredResponse(status, body),
            )
    return status, body


async def _replayed(
    ctx: ServiceContext, principal: Principal, key: str, digest: bytes
) -> JSONResponse | None:
    """The answer stored for this request under its Idempotency-Key, replayed; None if none."""
    stored = await idempotency.lookup(ctx.db.pool, caller=principal, key=key, digest=digest)
    return None if stored is None else _answer(stored.body, stored.status_code, replayed=True)


def _answer(body: Any, status: int, *, replayed: bool = False) -> JSONResponse:
    """A write's answer; with the record's ETag when it names the record's new version."""
    headers: dict[str, str] = {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if isinstance(body, dict) and isinstance(version := body.get("version"), int):
        headers["ETag"] = etag(version)
    return JSONResponse(body, status_code=status, headers=headers or None)


async def write(
    ctx: ServiceContext,
    request: Request,
    caller: Principal,
    status: int | Callable[[Any], int],
    command: Command,
    *,
    attempt: Callable[[Metadata], Awaitable[Any | None]] | None = None,
    if_match: bool = True,
) -> JSONResponse:
    """`execute_write` for a command: its handler in ctx.handlers runs in a
    PostgresUnitOfWork on the write's transaction, with ctx.projections, and the answer is
    its result with `status`, or the status `status(result)` gives (an answer whose status
    depends on the outcome, e.g. 202 while waiting for another party); `attempt` is the
    command's one-statement form (None: it cannot decide alone); `if_match` False: the
    command takes no If-Match (execute_write)."""
    status_of = status if callable(status) else lambda _: status
    handlers = ctx.handlers
    if handlers is None:
        raise LookupError(f"{ctx.service} has no command handlers")

    async def use_case(conn: asyncpg.Connection, meta: Metadata) -> tuple[int, Any]:
        uow = PostgresUnitOfWork(conn, ctx.projections, meta, ctx.clock())
        result = await handlers.handle(command, uow)
        return status_of(result), result

    one_statement: Attempt | None = None
    if attempt is not None:
        tried = attempt

        async def one_statement(meta: Metadata) -> tuple[int, Any] | None:
            result = await tried(meta)
            return None if result is None else (status_of(result), result)

    return await execute_write(
        ctx, request, caller, use_case, attempt=one_statement, if_match=if_match
    )


def create_app(
    *,
    service: str,
    settings: Settings,
    routers: Sequence[APIRouter],
    schema: Sequence[str],
    title: str,
    description: str = "",
    handlers: Handlers | None = None,
    projections: Sequence[Projection] = (),
) -> FastAPI:
    """Build a service's app. Nothing connects until the lifespan starts. `handlers` run the
    commands routes send with `write`, with `projections` in their unit of work."""
    logs.configure(service, settings.log_level)
    instants.configure(clock_skew_seconds=settings.clock_skew_seconds)
    metrics = Metrics(service)
    database = dbmod.Database(settings.database_url, max_size=settings.database_pool_size)
    ctx = ServiceContext(
        service=service,
        settings=settings,
        db=database,
        metrics=metrics,
        rate_limiter=RateLimiter(
            database, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        ),
        handlers=handlers,
        projections=projections,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # METRICS_PORT: /metrics there (from the start, the database reachable or not), and
        # not on the public port (shared/routes.py)
        async with contextlib.AsyncExitStack() as scrapes:
            if settings.metrics_port is not None:
                route = metrics_only(metrics, settings.metrics_token)
                server = await serve_metrics("0.0.0.0", settings.metrics_port, route)
                scrapes.callback(server.close)
            async with _running(app):
                yield

    @asynccontextmanager
    async def _running(app: FastAPI) -> AsyncIterator[None]:
        await dbmod.ensure_database(settings.database_url)
        await database.open()
        async with database.connection() as conn:
            await dbmod.migrate(conn, service, dbmod.schema_text("shared"), *schema)
        ctx.auth = Authenticator(database.pool, ttl=settings.auth_cache_ttl)
        ctx.notifier = Notifier(settings.database_url)
        await ctx.notifier.start()
        runtime.tune_gc(settings.gc_gen0_threshold)
        try:
            yield
        finally:
            for batcher in ctx.group_commits.values():
                await batcher.close()
            await ctx.notifier.stop()
            await database.close()

    app = FastAPI(
        title=title,
        description=description,
        lifespan=lifespan,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    problems.install_error_handlers(app)
    app.add_middleware(HeadAsGet)  # inside the edge: its metrics and access log say HEAD
    app.add_middleware(edge.EdgeMiddleware, metrics=metrics)
    for router in (
        *routers,
        routes.common_router(),
        contract_routes.router(),
        webhook_routes.router(),
        privacy_routes.router(),
    ):
        _add_routes(app, router)
    if settings.cors_origins:  # the outermost layer: a preflight is answered before the edge
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=cors_methods(app),
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
        )
    openapi.install(app, service=service, settings=settings)
    return app


# what a browser's script may send (beyond the CORS-safelisted ones) and read of an answer
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "X-Correlation-ID",
    "Last-Event-ID",
]
CORS_EXPOSED_HEADERS = [
    "X-Correlation-ID",  # every answer (shared/edge.py)
    "Retry-After",  # 429, 503
    "ETag",  # a record's version, for If-Match
    "WWW-Authenticate",  # 401
    "Link",  # the next page of a CSV report or a feed
    "Idempotent-Replayed",  # a write answered again under its Idempotency-Key
    "Content-Disposition",  # a CSV download's file name
    "Allow",  # 405
]


def cors_methods(app: FastAPI) -> list[str]:
    """Every method the app's routes serve (HEAD wherever GET is, HeadAsGet), so a browser's
    preflight lets through every operation the API documents, DELETE included."""
    methods = {m for r in app.router.routes if isinstance(r, APIRoute) for m in r.methods or ()}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


class HeadAsGet:
    """HEAD wherever GET is served (RFC 9110, 9.3.2): the request goes to the routes as a GET
    (so HEAD is no operation of its own in the OpenAPI documents), and its answer is sent with
    the GET's status and headers and no body. Once the head is sent the route hears that the
    client is gone, so a stream (Server-Sent Events) ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        sent = False

        async def head_receive() -> Message:
            return {"type": "http.disconnect"} if sent else await receive()

        async def head_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start" and not sent:
                sent = True
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            # the body (and anything after it) is not sent

        scope["method"] = "GET"
        try:
            await self.app(scope, head_receive, head_send)
        finally:
            scope["method"] = "HEAD"  # what the edge counts and logs


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, added to the app's own list as they are. `include_router` would
    wrap the router in a live view (FastAPI 0.165) that every request walks twice, checking
    its routes' version and rebuilding scope keys on the way: about a tenth of a write's CPU
    here. Our routers carry their full paths, tags and dependencies in each route, and are
    never nested or changed after start-up, so there is nothing for an include to add."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only plain API routes are added to an app here")
        openapi.name_operations([route])
        json_body.read_numbers_as_written(route)
        app.router.routes.append(route)
    # what else an include carries: the router's lifespan, run inside the app's (as
    # include_router nests it; shipments' api/updates.py needs the service context open)
    if router.on_startup or router.on_shutdown:
        raise TypeError("give the router a lifespan instead of start-up or shutdown handlers")
    outer, inner = app.router.lifespan_context, router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[None]:
        async with outer(application), inner(application):
            yield

    app.router.lifespan_context = lifespan
