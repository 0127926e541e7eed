"""Routes every service has: health, readiness, metrics, the event feed and verification."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from shared import instants, keys, privacy_migration, problems, responses, route_docs
from shared.auth import Role
from shared.deps import Caller, Ctx, ServiceContext
from shared.errors import NotFound, ValidationFailed
from shared.event_store import PostgresEventStore
from shared.events import RecordedEvent, Selection
from shared.metrics import refused, scrape_allowed

Deep = Annotated[
    bool,
    Query(
        description="canonicalise every event again with rfc8785 instead of hashing the"
        " canonical body rendered from its stored columns (slower; the verdict is the same)"
    ),
]


HISTORY_PAGE = 500  # events of a record's history per page, unless asked otherwise


def _window(recorded_from: datetime, recorded_to: datetime) -> ValidationFailed:
    """A feed window that holds no instant (recorded_to is exclusive): refused, as a report's
    reversed period is, rather than answered with an empty page."""
    reason = (
        f"recorded_to {recorded_to.isoformat()} does not lie after recorded_from"
        f" {recorded_from.isoformat()} (recorded_to is exclusive): the window holds no event"
    )
    return ValidationFailed(
        reason,
        extra={
            "invalid_params": [
                {"name": "query.recorded_from", "reason": reason},
                {"name": "query.recorded_to", "reason": reason},
            ]
        },
    )


def event_json(event: RecordedEvent, redaction: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The event as the feed and the history show it; `redaction`: how an event rewritten in
    place after it was sealed still links (shared/privacy_migration.py carried)."""
    if redaction is not None:
        return {**event_json(event), "redaction": dict(redaction)}
    return {**event.as_json(), "hash": event.hash.hex() if event.hash else None}


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=50)
    position: int = Field(ge=1, le=2**63 - 1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: Annotated[instants.PastInstantText, Field(max_length=64)]
    public_key: str = Field(max_length=100)
    signature: str = Field(max_length=200)


class HeldCheckpoints(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "checkpoints": [
                        {
                            "service": "pledges",
                            "position": 1200,
                            "hash": "9f2c" * 16,
                            "signed_at": "2023-03-01T12:00:00+00:00",
                            "public_key": "q9J3oU6l0a4yOqkqGmR9m1yZ9a5q8Wn1m2d3e4f5g6h=",
                            "signature": "3q2+7w" * 14,
                        }
                    ]
                }
            ]
        },
    )

    checkpoints: list[Checkpoint] = Field(max_length=10_000)


def common_router() -> APIRouter:
    router = route_docs.Router()

    @router.get(
        "/healthz",
        tags=["health"],
        operation_id="getHealth",
        responses=problems.documented(responses.Health, public=True),
    )
    async def healthz(ctx: Ctx) -> dict[str, str]:
        """Alive while the process serves requests (no key needed)."""
        return {"status": "alive", "service": ctx.service}

    @router.get(
        "/readyz",
        tags=["health"],
        operation_id="getReadiness",
        responses={
            **problems.documented(responses.Readiness, public=True),
            503: {"model": responses.Readiness, "description": "A dependency is not reached"},
        },
    )
    async def readyz(ctx: Ctx) -> Response:
        """Ready when the database answers (no key needed); 503 with the failing check."""
        # The database only: an API writes its events to the log and never talks to the
        # broker (its worker relays them), so a broker outage must not take the APIs out of
        # service; the workers' readiness says whether the broker is reached.
        checks = {"database": await _database_ok(ctx)}
        ok = all(checks.values())
        body = {"status": "ready" if ok else "not ready", "service": ctx.service, "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(ctx: Ctx, request: Request) -> Response:
        """Prometheus metrics; with METRICS_TOKEN a bearer of it only, with METRICS_PORT on
        that port only (shared/metrics.py serves it there; this one answers 404)."""
        if ctx.settings.metrics_port is not None:
            raise NotFound("/metrics is served on this service's metrics port")
        authorization = request.headers.get("authorization")
        if not scrape_allowed(ctx.settings.metrics_token, authorization):
            raise refused()
        return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @router.read(
        "/v1/events", responses.EventPage, 403, 422, tags=["events"], operation_id="listEvents"
    )
    async def feed(
        ctx: Ctx,
        caller: Caller,
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        stream_type: Annotated[str | None, Query(max_length=100)] = None,
        event_type: Annotated[str | None, Query(max_length=200)] = None,
        organisation: Annotated[
            str | None,
            Query(
                max_length=100,
                description="the organisation that acted: the organisation of the API key that"
                " caused the event (its metadata's `organisation`), not the organisations the"
                " record concerns; an event no API key caused (e.g. a chain checkpoint) has none",
            ),
        ] = None,
        correlation_id: Annotated[str | None, Query(max_length=128)] = None,
        recorded_from: Annotated[
            instants.QueryInstant | None,
            Query(description="recorded at or after this instant (RFC 3339, with its offset)"),
        ] = None,
        recorded_to: Annotated[
            instants.QueryInstant | None,
            Query(
                description="recorded before this instant (exclusive), which lies after"
                " recorded_from: an empty or reversed window is refused (422)"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """The sealed event log after a global position, in position order: the cursor
        (`next_after`) is stable; consumers catch up from this same feed. `signed_head` is the
        page's last position and chain hash signed with the service's key (the data of a chain
        checkpoint): with the hash links of the page, it shows every event of it authentic."""
        caller.require(Role.AUDITOR, Role.SERVICE)
        if recorded_from is not None and recorded_to is not None and recorded_to <= recorded_from:
            raise _window(recorded_from, recorded_to)
        where = Selection(
            stream_type=stream_type,
            event_type=event_type,
            organisation=organisation,
            correlation_id=correlation_id,
            recorded_from=recorded_from,
            recorded_to=recorded_to,
        )
        async with ctx.db.connection() as conn:
            events = await PostgresEventStore(conn).read_all(after=after, limit=limit, where=where)
            redactions = await privacy_migration.carried(conn, [e.position or 0 for e in events])
        last = events[-1].position if events else after
        head = None
        if events and events[-1].hash is not None and (signer := ctx.signer()) is not None:
            # the last event's chain hash, signed: with the chain links of the events before it,
            # a consumer catching up knows the whole page is this service's own
            head = signer.checkpoint(
                service=ctx.service, position=last or 0, head=events[-1].hash, at=ctx.clock()
            )
        return {
            "events": [event_json(e, redactions.get(e.position or 0)) for e in events],
            "next_after": last,
            "signed_head": head,
        }

    @router.read(
        "/v1/audit/streams/{stream_id}",
        responses.StreamHistory,
        403,
        404,
        422,
        tags=["audit"],
        operation_id="getStreamHistory",
    )
    async def history(
        ctx: Ctx,
        caller: Caller,
        stream_id: Annotated[str, Path(max_length=200)],
        after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = HISTORY_PAGE,
    ) -> dict[str, Any]:
        """Every event of one record (e.g. `organisation-kharkiv`), with who, when and hash,
        in version order, a page at a time: pass `next_after` back as `after` for the next
        page (null: that was the last)."""
        caller.require(Role.AUDITOR)
        async with ctx.db.connection() as conn:
            store = PostgresEventStore(conn)
            events = await store.read_stream(stream_id, after_version=after, limit=limit + 1)
            if not events and (after == 0 or not await store.read_stream(stream_id, limit=1)):
                raise NotFound(f"no record {stream_id} in {ctx.service}")
        more = len(events) > limit
        events = events[:limit]
        return {
            "stream_id": stream_id,
            "events": [event_json(e) for e in events],
            "next_after": events[-1].stream_version if more else None,
        }

    @router.read(
        "/v1/audit/verify", responses.Verdict, 403, 422, tags=["audit"], operation_id="verifyChain"
    )
    async def verify(ctx: Ctx, caller: Caller, deep: Deep = False) -> dict[str, Any]:
        """Recompute the hash chain: intact up to a head, or the first bad position. Signed
        checkpoints count only if signed by the service's pinned key (TRUSTED_KEYS) or a key
        its log announced since; with none pinned, `warning` says they were not checked."""
        caller.require(Role.AUDITOR)
        async with ctx.db.connection() as conn:
            verdict = await PostgresEventStore(conn).verify(deep=deep, **_pins(ctx))
        return verdict.as_dict()

    @router.post(
        "/v1/audit/verify",
        tags=["audit"],
        operation_id="verifyChainAgainstCheckpoints",
        responses=problems.documented(responses.Verdict, 403, 413, 422),
    )
    async def verify_against(
        body: HeldCheckpoints, ctx: Ctx, caller: Caller, deep: Deep = False
    ) -> dict[str, Any]:
        """Verify, and check the log still matches signed checkpoints the auditor kept
        (a rewrite that also recomputed the chain, or cut its tail, fails here)."""
        caller.require(Role.AUDITOR)
        held = [c.model_dump() for c in body.checkpoints]
        async with ctx.db.connection() as conn:
            verdict = await PostgresEventStore(conn).verify(
                held_checkpoints=held, deep=deep, **_pins(ctx)
            )
        return verdict.as_dict()

    return router


def _pins(ctx: ServiceContext) -> dict[str, Any]:
    # a ring of its own per walk: the walk extends it with the key changes it meets
    return {"service": ctx.service, "keys": keys.KeyRing.pinned(ctx.settings.trusted_keys)}


async def _database_ok(ctx: ServiceContext) -> bool:
    try:
        async with ctx.db.connection() as conn:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 2)
        return True
    except Exception:
        return False
