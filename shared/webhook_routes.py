"""Every service's webhook subscription routes (`/v1/webhooks`), for its own events.

An organisation's keys manage its organisation's subscriptions only (another organisation's
answer 404, as if they did not exist). What a subscription delivers is decided by the key that
created it (shared/webhooks.py says the rule); its signing secret is shown at creation only (and
to a retry of it under the same Idempotency-Key, shared/idempotency.py).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from shared import (
    idempotency,
    pagination,
    privacy_subjects,
    problems,
    published,
    webhook_addresses,
    webhooks,
)
from shared.auth import Principal, Role
from shared.deps import Caller, Ctx, ServiceContext
from shared.errors import NotFound, ValidationFailed
from shared.free_text import PlainText
from shared.responses import NextCursor
from shared.route_params import Page, paged

TAG = "webhooks"


def _storable(value: str) -> str:
    """Text PostgreSQL stores (no NUL) and UTF-8 encodes (no lone surrogate)."""
    if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
        raise ValueError("may not hold NUL characters or unpaired surrogates")
    return value


Storable = AfterValidator(_storable)
EventType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$", max_length=200)]
StreamId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$"), Storable]
SubscriptionId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{16}$", max_length=19)]
Position = Annotated[int, Field(ge=1, le=2**63 - 1)]
EXAMPLE: JsonDict = {
    "url": "https://partner.lille.fr/twinaid/webhooks",
    "event_types": ["shipments.convoy-dispatched", "shipments.delivery-confirmed"],
    "streams": ["convoy-lille-kharkiv-2022-06"],
    "own_records": True,
    "description": "Lille's logistics desk: our convoys on the road",
}


class Problem(BaseModel):
    """RFC 9457 problem details, as every 4xx of this API answers (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    correlation_id: str | None = None
    invalid_params: list[dict[str, str]] | None = None


_REASONS = {
    401: "No valid API key (send `Authorization: Bearer <API key>`)",
    404: "No subscription by that id for the caller's organisation",
    409: "The subscription is disabled (its key was revoked or expired): subscribe again",
    422: "The request is not valid",
    429: "Too many requests for this key",
}


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": Problem,
            "description": _REASONS[code],
            "content": {"application/problem+json": {}},
        }
        for code in codes
    }


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    url: Annotated[str, Storable] = Field(
        max_length=2000,
        description="http:// or https://; no credentials or fragment. Hosts that are not public"
        " (loopback, private, link-local; names resolving to them) are refused unless the"
        " service's WEBHOOK_ALLOWED_HOSTS lists them",
    )
    event_types: list[EventType] = Field(
        default=[],
        max_length=100,
        description="only these event types (none: every type): the service's own (GET"
        " /schemas lists them), or `audit.*` (checkpoints, key changes) for a key that reads the"
        " raw event feed, the only keys they reach; any other is refused (422)",
    )
    streams: list[StreamId] = Field(
        default=[],
        max_length=100,
        description="only events of these records, by stream id (e.g. `convoy-<id>`,"
        " `need-<id>`, `pledge-<id>`, `organisation-<id>`; none: every record); a stream of"
        " another service's records is refused (422): this service's log never holds it",
    )
    own_records: bool = Field(
        default=False, description="only records the caller's organisation is a party to"
    )
    description: Annotated[str, Storable, PlainText] = Field(default="", max_length=500)
    from_position: Position | None = Field(
        default=None,
        description="deliver from this log position on (1: the whole log the key may read);"
        " none: only events recorded from now on",
    )


class ReplayIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"from_position": 1}]}
    )

    from_position: Position = Field(
        description="send again every event from this log position on, in order"
    )


class WebhookOut(BaseModel):
    subscription_id: str = Field(examples=["wh_5f0c2a9e1b7d4c30"])
    url: str
    event_types: list[str]
    streams: list[str]
    own_records: bool
    description: str
    created_at: datetime
    after_position: int = Field(description="the last log position handled (delivered or left out)")
    status: Literal["active", "failing", "disabled"] = Field(
        description="failing: deliveries failed for longer than WEBHOOK_FAILING_AFTER (they go"
        " on); disabled: the API key that subscribed was revoked or expired"
    )
    failing_since: datetime | None
    attempts: int = Field(description="failed attempts at the next event to deliver")
    next_attempt_at: datetime
    last_error: str | None


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="the Standard Webhooks signing secret (whsec_...): shown only in this"
        " answer (and its replays under the same Idempotency-Key)",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookList(BaseModel):
    items: list[WebhookOut]
    next_cursor: NextCursor


class DeliveryOut(BaseModel):
    delivery_id: int
    position: int
    event_id: str
    event_type: str
    attempt: int = Field(description="1 for the first attempt at this event, then 2, 3...")
    attempted_at: datetime
    outcome: Literal["delivered", "failed"]
    status_code: int | None = Field(description="the receiver's HTTP status, if it answered")
    error: str | None
    duration_ms: int


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_after: int = Field(description="pass as `after` for the next page")


def _out(row: asyncpg.Record) -> dict[str, Any]:
    return {k: row[k] for k in WebhookOut.model_fields}


def _invalid(name: str, reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"{name}: {reason}", extra={"invalid_params": [{"name": name, "reason": reason}]}
    )


async def _check_position(conn: asyncpg.Connection, name: str, position: int) -> None:
    head = await webhooks.head(conn)
    if position > head + 1:
        raise _invalid(name, f"the log's last position is {head}: start at {head + 1} at most")


@functools.cache
def _published_types() -> dict[str, tuple[str, ...]]:
    """{owner: the event types it publishes}: each service's, and `shared` (audit.*,
    privacy.*), from the published schema files (shared/published.py)."""
    return {
        owner: tuple(sorted({p.name.rsplit(".v", 1)[0] for p in folder.glob("*.v*.json")}))
        for owner, folder in published.folders().items()
    }


def _feed_only(caller: Principal, name: str, what: str) -> None:
    """ValidationFailed naming `name` unless `caller` reads the raw feed, the only keys `what`
    (an audit.* or privacy.* type, a log's own stream) reaches."""
    if not caller.has(*webhooks.FEED_ROLES):
        roles = " and ".join(r.value for r in webhooks.FEED_ROLES)
        raise _invalid(
            name,
            f"{what} reaches keys that read the raw event feed only ({roles} roles):"
            " a subscription of this key would never receive it",
        )


def _check_types(ctx: ServiceContext, caller: Principal, event_types: list[str]) -> None:
    """Every type a subscription names is one it can receive (docs/webhooks.md): one of the
    service's own event types, or an `audit.*` (checkpoints, key changes) or `privacy.*` type
    (erasures, redactions: every service's log holds them) for a key that reads the raw feed,
    the only keys they reach (shared/webhooks.py)."""
    own = _published_types().get(ctx.service, ())
    shared_types = _published_types().get("shared", ())
    for i, t in enumerate(event_types):
        name = f"event_types.{i}"
        family = t.partition(".")[0]
        if family in ("audit", "privacy"):
            known = tuple(x for x in shared_types if x.startswith(f"{family}."))
            if t not in known:
                raise _invalid(
                    name, f"{t} is no {family} event type (they are: {', '.join(known)})"
                )
            _feed_only(caller, name, t)
        elif not t.startswith(f"{ctx.service}."):
            raise _invalid(
                name, f"{t} is not an event of {ctx.service} (its types: {ctx.service}.*)"
            )
        elif t not in own:
            raise _invalid(
                name,
                f"{ctx.service} records no {t} events (its types: {', '.join(own)})",
            )


def _check_streams(ctx: ServiceContext, caller: Principal, streams: list[str]) -> None:
    """Every stream a subscription names is one this service's log holds and this key can
    receive: one of its records (`<kind>-<id>`), or, for a key that reads the raw feed, its
    own checkpoints, key changes and redactions (`<kind>-<service>`) or a person's stream
    (`subject-<service>-...`) it recorded. Another service's record, an unknown kind, or a
    stream only feed readers receive, is refused: it would never match."""
    own = webhooks.RECORD_STREAMS.get(ctx.service, ())
    others = {
        kind: service
        for service, kinds in webhooks.RECORD_STREAMS.items()
        if service != ctx.service
        for kind in kinds
        if kind not in own
    }
    kinds = ", ".join(f"{k}-<id>" for k in own)
    feed_kinds = (*webhooks.SERVICE_STREAMS, privacy_subjects.STREAM_TYPE)
    for i, stream in enumerate(streams):
        name = f"streams.{i}"
        if any(stream.startswith(f"{k}-") and len(stream) > len(k) + 1 for k in own):
            continue
        feed_kind = next((k for k in feed_kinds if stream.startswith(f"{k}-")), None)
        if feed_kind is not None:
            rest = stream.removeprefix(f"{feed_kind}-")
            owner = rest.partition("-")[0] if feed_kind == privacy_subjects.STREAM_TYPE else rest
            if owner != ctx.service:
                raise _invalid(
                    name, f"{stream} is a stream of {owner}, never in {ctx.service}'s log"
                )
            _feed_only(caller, name, stream)
            continue
        service = others.get(stream.partition("-")[0])
        if service is not None:
            raise _invalid(
                name,
                f"{stream} is a stream of {service}, never in {ctx.service}'s log (its records:"
                f" {kinds})",
            )
        raise _invalid(name, f"{stream} is no stream of {ctx.service}'s log (its records: {kinds})")


async def _subscription(ctx: ServiceContext, organisation: str, sid: str) -> asyncpg.Record:
    async with ctx.db.connection() as conn:
        row = await webhooks.one(conn, organisation=organisation, subscription_id=sid)
    if row is None:
        raise _unknown(sid, organisation)
    return row


def _unknown(sid: str, organisation: str) -> NotFound:
    """As an unknown subscription answers, and another organisation's (as if it did not exist)."""
    return NotFound(f"no webhook {sid} for {organisation}")


def router() -> APIRouter:
    r = APIRouter(prefix="/v1/webhooks", tags=[TAG])

    @r.post(
        "",
        operation_id="createWebhook",
        status_code=201,
        response_model=WebhookCreated,
        summary="Subscribe a URL to this service's events",
        description="Deliveries follow the Standard Webhooks specification (webhook-id,"
        " webhook-timestamp, webhook-signature), in log order, retried with exponential backoff."
        " The subscription receives only what the calling key could read through this API,"
        " redacted the same way. The signing secret is in this answer only. Honours"
        " Idempotency-Key: a retry with the same key and body gets this answer again, the same"
        " subscription and secret (kept with the key for IDEMPOTENCY_KEEP_HOURS, for the"
        " organisation's keys holding the creating key's roles), and subscribes nothing more.",
        responses=_problems(401, 422, 429),
        openapi_extra=problems.IDEMPOTENT,
    )
    async def create_webhook(
        body: WebhookIn, request: Request, ctx: Ctx, caller: Caller
    ) -> JSONResponse:
        try:
            webhook_addresses.check_url(body.url, allowed_hosts=ctx.settings.webhook_allowed_hosts)
        except ValueError as exc:
            raise _invalid("url", str(exc)) from None
        _check_types(ctx, caller, body.event_types)
        _check_streams(ctx, caller, body.streams)

        async def create(conn: asyncpg.Connection) -> idempotency.StoredResponse:
            if body.from_position is not None:
                await _check_position(conn, "from_position", body.from_position)
            row, secret = await webhooks.create(
                conn,
                principal=caller,
                url=body.url,
                event_types=sorted(set(body.event_types)),
                streams=sorted(set(body.streams)),
                own_records=body.own_records,
                description=body.description,
                from_position=body.from_position,
            )
            answer = WebhookCreated.model_validate({**_out(row), "secret": secret})
            return idempotency.StoredResponse(201, answer.model_dump(mode="json"))

        return await idempotency.written_once(ctx.db, request, caller, create)

    @r.get(
        "",
        operation_id="listWebhooks",
        response_model=WebhookList,
        summary="The caller's organisation's webhook subscriptions",
        description="The live subscriptions of the caller's organisation, oldest first,"
        " without secrets, a page at a time: follow `next_cursor` (null on the last page).",
        responses=_problems(401, 422, 429),
    )
    async def list_webhooks(
        ctx: Ctx, caller: Caller, page: Annotated[Page, paged(100)]
    ) -> dict[str, Any]:
        after = pagination.decode(page.cursor, parts=(datetime, str))
        async with ctx.db.connection() as conn:
            rows = await webhooks.listed(
                conn,
                organisation=caller.organisation,
                after=(after[0], after[1]) if after else None,
                limit=page.limit + 1,
            )
        shown, next_cursor = pagination.page(
            rows,
            limit=page.limit,
            key_of=lambda row: [row["created_at"].isoformat(), row["subscription_id"]],
        )
        return {"items": [_out(row) for row in shown], "next_cursor": next_cursor}

    @r.get(
        "/{subscription_id}",
        operation_id="getWebhook",
        response_model=WebhookOut,
        summary="One webhook subscription",
        description="Its filters, cursor and delivery state (active, failing, disabled).",
        responses=_problems(401, 404, 422, 429),
    )
    async def get_webhook(subscription_id: SubscriptionId, ctx: Ctx, caller: Caller) -> Any:
        return _out(await _subscription(ctx, caller.organisation, subscription_id))

    @r.delete(
        "/{subscription_id}",
        operation_id="deleteWebhook",
        status_code=204,
        response_class=Response,
        summary="Stop a webhook subscription",
        description="Nothing more is delivered; the delivery log is kept.",
        responses=_problems(401, 404, 422, 429),
    )
    async def delete_webhook(subscription_id: SubscriptionId, ctx: Ctx, caller: Caller) -> Response:
        async with ctx.db.connection() as conn:
            gone = await webhooks.delete(
                conn, organisation=caller.organisation, subscription_id=subscription_id
            )
        if not gone:
            raise _unknown(subscription_id, caller.organisation)
        return Response(status_code=204)

    @r.get(
        "/{subscription_id}/deliveries",
        operation_id="listWebhookDeliveries",
        response_model=DeliveryPage,
        summary="Every delivery attempt of a subscription, with its outcome",
        description="Attempts in the order they were made (delivered, or failed with the"
        " receiver's status or the error), paged by delivery id.",
        responses=_problems(401, 404, 422, 429),
    )
    async def list_deliveries(
        subscription_id: SubscriptionId,
        ctx: Ctx,
        caller: Caller,
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        subscription = await _subscription(ctx, caller.organisation, subscription_id)
        async with ctx.db.connection() as conn:
            # the log of a subscription names the events it was sent: a key that reads beyond
            # its organisation's records (the raw feed: auditor, service; any record: registry
            # administrator) has its log shown to itself and to keys that read as far, never to
            # the organisation's other keys (a member would learn what those read)
            if subscription["key_id"] != caller.key_id and not caller.has(*webhooks.FEED_ROLES):
                reader = await webhooks.reader_of(conn, subscription["key_id"])
                if reader is None or (
                    reader.has(*webhooks.FEED_ROLES)
                    or (reader.has(Role.REGISTRY_ADMIN) and not caller.has(Role.REGISTRY_ADMIN))
                ):
                    raise _unknown(subscription_id, caller.organisation)
            rows = await webhooks.deliveries(
                conn, subscription_id=subscription_id, after=after, limit=limit
            )
        items = [{**dict(row), "event_id": str(row["event_id"])} for row in rows]
        return {"items": items, "next_after": rows[-1]["delivery_id"] if rows else after}

    @r.post(
        "/{subscription_id}/replay",
        operation_id="replayWebhook",
        response_model=WebhookOut,
        summary="Deliver again from a log position",
        description="Every event from `from_position` on that the subscription selects is"
        " sent again, in order, with its same webhook-id; failures so far are forgotten."
        " A disabled subscription (its key revoked or expired) cannot be replayed (409):"
        " subscribe again with a valid key, from its `after_position` + 1.",
        responses=_problems(401, 404, 409, 422, 429),
    )
    async def replay_webhook(
        subscription_id: SubscriptionId, body: ReplayIn, ctx: Ctx, caller: Caller
    ) -> Any:
        async with ctx.db.connection() as conn:
            await _check_position(conn, "from_position", body.from_position)
            row = await webhooks.replay(
                conn,
                organisation=caller.organisation,
                subscription_id=subscription_id,
                from_position=body.from_position,
            )
        if row is None:
            raise _unknown(subscription_id, caller.organisation)
        return _out(row)

    return r
