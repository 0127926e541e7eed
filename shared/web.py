"""The HTTP edge every service shares: problems, auth, correlation ids, health, metrics, feed."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import db as dbmod
from shared import idempotency, logs
from shared.auth import Authenticator, Principal, Role
from shared.errors import ServiceUnavailable, TwinaidError
from shared.event_store import PostgresEventStore
from shared.events import Metadata, RecordedEvent
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger("twinaid.web")
PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 1_000_000


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServiceContext:
    """Everything a request of one service may use; built once by the composition root."""

    service: str
    settings: Settings
    db: dbmod.Database
    metrics: Metrics
    clock: Callable[[], datetime] = utcnow
    auth: Authenticator | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    cid = logs.correlation_id.get()
    if cid:
        body = {**body, "correlation_id": cid}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    invalid = [
        {
            "name": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
            "reason": err.get("msg", "invalid"),
        }
        for err in exc.errors()
    ]
    return problem_response(
        422,
        {
            "type": "https://twinaid.example/problems/validation-error",
            "title": "The request is not valid",
            "status": 422,
            "detail": "; ".join(f"{i['name']}: {i['reason']}" for i in invalid),
            "invalid_params": invalid,
        },
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_twinaid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, TwinaidError)
        return problem_response(exc.status, exc.problem())

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(exc)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code,
            {
                "type": "about:blank",
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
            },
            headers=getattr(exc, "headers", None),
        )

    async def on_db_down(_: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        return problem_response(
            503,
            ServiceUnavailable("the database is not reachable").problem(),
            headers={"Retry-After": "2"},
        )

    app.add_exception_handler(TwinaidError, on_twinaid)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for exc_type in (
        OSError,
        asyncpg.CannotConnectNowError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.InterfaceError,
    ):
        app.add_exception_handler(exc_type, on_db_down)


def internal_error() -> JSONResponse:
    return problem_response(
        500,
        {
            "type": "https://twinaid.example/problems/internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "an unexpected error occurred; quote the correlation id when reporting it",
        },
    )


class EdgeMiddleware:
    """Correlation id in and out, request metrics, and a cap on body size."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = None
        for name, value in scope.get("headers", ()):
            if name == b"x-correlation-id":
                cid = value.decode("latin-1")[:128]
            elif name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                response = problem_response(
                    413,
                    {
                        "type": "https://twinaid.example/problems/too-large",
                        "title": "Body too large",
                        "status": 413,
                        "detail": f"bodies are limited to {MAX_BODY_BYTES} bytes",
                    },
                )
                await response(scope, receive, send)
                return
        if not cid or not cid.isprintable():
            cid = str(uuid.uuid4())
        token = logs.correlation_id.set(cid)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-correlation-id", cid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # A bug: log it with the correlation id, answer without internals.
            log.error("unhandled error", exc_info=exc)
            if started_response:
                raise
            await internal_error()(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests(scope["method"], path, str(status)).inc()
            self.metrics.request_seconds(path).observe(time.perf_counter() - started)
            logs.correlation_id.reset(token)


def context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(context)]


async def authenticate(
    ctx: Ctx,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    assert ctx.auth is not None
    return await ctx.auth.authenticate(authorization)


Caller = Annotated[Principal, Depends(authenticate)]


def metadata_for(
    principal: Principal, *, idempotency_key: str | None = None, causation_id: str | None = None
) -> Metadata:
    return Metadata(
        actor=principal.key_id,
        organisation=principal.organisation,
        correlation_id=logs.correlation_id.get(),
        causation_id=causation_id,
        idempotency_key=idempotency_key,
    )


UseCase = Callable[[asyncpg.Connection, Metadata], Awaitable[tuple[int, Any]]]


async def execute_write(
    ctx: ServiceContext, request: Request, principal: Principal, use_case: UseCase
) -> JSONResponse:
    """Run one write use case in one transaction, honouring Idempotency-Key.

    The stored answer is written in the same transaction as the events, so a retried request
    after a timeout gets the first answer and appends nothing.
    """
    raw_key = request.headers.get("idempotency-key")
    key = idempotency.check_key(raw_key) if raw_key is not None else None
    digest = idempotency.request_hash(request.method, request.url.path, await request.body())
    org = principal.organisation
    if key is not None:
        stored = await idempotency.lookup(ctx.db.pool, organisation=org, key=key, digest=digest)
        if stored is not None:
            return JSONResponse(
                stored.body, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"}
            )
    meta = metadata_for(principal, idempotency_key=key)
    try:
        async with ctx.db.transaction() as conn:
            status, body = await use_case(conn, meta)
            if key is not None:
                await idempotency.remember(
                    conn,
                    organisation=org,
                    key=key,
                    digest=digest,
                    response=idempotency.StoredResponse(status, body),
                )
    except (asyncpg.UniqueViolationError, TwinaidError):
        if key is None:
            raise
        # A concurrent twin of this request may have won the race (and made ours conflict):
        # answer as it did.
        stored = await idempotency.lookup(ctx.db.pool, organisation=org, key=key, digest=digest)
        if stored is None:
            raise
        return JSONResponse(
            stored.body, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"}
        )
    return JSONResponse(body, status_code=status)


def event_json(event: RecordedEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "event_id": str(event.event_id),
        "stream_type": event.stream_type,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "data": event.data,
        "metadata": event.metadata.as_dict(),
        "hash": event.hash.hex() if event.hash else None,
    }


def common_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["health"])
    async def healthz(ctx: Ctx) -> dict[str, str]:
        return {"status": "alive", "service": ctx.service}

    @router.get("/readyz", tags=["health"])
    async def readyz(ctx: Ctx) -> Response:
        checks = {"database": await _database_ok(ctx), "broker": await _broker_ok(ctx)}
        ok = all(checks.values())
        body = {"status": "ready" if ok else "not ready", "service": ctx.service, "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(ctx: Ctx) -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/v1/events", tags=["events"])
    async def feed(
        ctx: Ctx,
        caller: Caller,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        stream_type: Annotated[str | None, Query(max_length=100)] = None,
        event_type: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        """The sealed event log after a global position, in position order (stable cursor)."""
        caller.require(Role.AUDITOR, Role.SERVICE)
        async with ctx.db.connection() as conn:
            events = await PostgresEventStore(conn).read_all(
                after=after, limit=limit, stream_type=stream_type, event_type=event_type
            )
        last = events[-1].position if events else after
        return {"events": [event_json(e) for e in events], "next_after": last}

    @router.get("/v1/audit/verify", tags=["audit"])
    async def verify(ctx: Ctx, caller: Caller) -> dict[str, Any]:
        """Recompute the hash chain: intact up to a head, or the first bad position."""
        caller.require(Role.AUDITOR)
        async with ctx.db.connection() as conn:
            verdict = await PostgresEventStore(conn).verify()
        return verdict.as_dict()

    return router


async def _database_ok(ctx: ServiceContext) -> bool:
    try:
        async with ctx.db.connection() as conn:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 2)
        return True
    except Exception:
        return False


async def _broker_ok(ctx: ServiceContext) -> bool:
    for server in ctx.settings.kafka_bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


def create_app(
    *,
    service: str,
    settings: Settings,
    routers: Sequence[APIRouter],
    schema: Sequence[str],
    title: str,
    description: str = "",
) -> FastAPI:
    """Build a service's app. Nothing connects until the lifespan starts."""
    logs.configure(service, settings.log_level)
    metrics = Metrics(service)
    database = dbmod.Database(settings.database_url, max_size=settings.database_pool_size)
    ctx = ServiceContext(service=service, settings=settings, db=database, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await dbmod.ensure_database(settings.database_url)
        await database.open()
        async with database.connection() as conn:
            await dbmod.apply_schema(conn, dbmod.schema_text("shared"), *schema)
        ctx.auth = Authenticator(database.pool, ttl=settings.auth_cache_ttl)
        try:
            yield
        finally:
            await database.close()

    app = FastAPI(title=title, description=description, lifespan=lifespan, version="0.1.0")
    app.state.ctx = ctx
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, metrics=metrics)
    app.include_router(common_router())
    for router in routers:
        app.include_router(router)
    return app


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
