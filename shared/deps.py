"""Request dependencies every route may use: the service context and the authenticated caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from shared import db as dbmod
from shared import errors, logs, published, signing
from shared.auth import Authenticator, Principal
from shared.batching import GroupCommit, KeyedGroupCommit
from shared.commands import Handlers
from shared.events import Metadata
from shared.metrics import Metrics
from shared.notify import Notifier
from shared.principals import Role
from shared.projections import Projection
from shared.ratelimit import RateLimiter
from shared.settings import Settings


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
    notifier: Notifier | None = None
    rate_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(rate=0, burst=1))
    extras: dict[str, Any] = field(default_factory=dict)
    # by name: a kind of write's group commit, or its group commit per record (keyed)
    group_commits: dict[str, GroupCommit[Any, Any] | KeyedGroupCommit[Any, Any, Any]] = field(
        default_factory=dict
    )
    signing_key: signing.KeyFile | None = None
    # the service's command handlers and the projections their unit of work runs (app.py)
    handlers: Handlers | None = None
    projections: Sequence[Projection] = ()

    def signer(self) -> signing.Signer | None:
        """The service's signing key (SIGNING_KEY_FILE, shared with its worker), if it has one:
        the feed signs the last event of each page with it."""
        if self.signing_key is None:
            path = self.settings.signing_key_file
            self.signing_key = signing.KeyFile(Path(path) if path else None)
        return self.signing_key.current()

    def group_commit(
        self, name: str, run: Callable[[list[Any]], Awaitable[Sequence[Any]]]
    ) -> GroupCommit[Any, Any]:
        """The service's group commit for one kind of write (shared/batching.py), made on
        first use; the app closes them at shutdown."""
        batcher = self.group_commits.get(name)
        if batcher is None:
            batcher = self.group_commits[name] = GroupCommit(run, observe=self._observer(name))
        assert isinstance(batcher, GroupCommit), f"{name} is a group commit per record"
        return batcher

    def keyed_group_commit(
        self, name: str, run: Callable[[Any, list[Any]], Awaitable[Sequence[Any]]]
    ) -> KeyedGroupCommit[Any, Any, Any]:
        """The service's group commit per record for one kind of write (shared/batching.py:
        `run` gets the record's key and the batch), made on first use; closed at shutdown.
        Its batches count in the same metrics as a group commit's, under `name`."""
        batcher = self.group_commits.get(name)
        if batcher is None:
            batcher = self.group_commits[name] = KeyedGroupCommit(run, observe=self._observer(name))
        assert isinstance(batcher, KeyedGroupCommit), f"{name} is a group commit of all records"
        return batcher

    def _observer(self, name: str) -> Callable[[int], None]:
        batches = self.metrics.group_commit_batches(name)
        items = self.metrics.group_commit_items(name)

        def observe(size: int) -> None:
            batches.inc()
            items.inc(size)

        return observe


async def context(request: Request) -> ServiceContext:  # async: no worker thread
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def header(request: Request, name: bytes) -> str | None:
    """The first value of a request header (`name` in lower case, as ASGI gives names), read
    from the scope in one pass: Starlette's Headers.get goes through Mapping.get, which scans
    and decodes every header and raises KeyError inside for a missing one."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


Ctx = Annotated[ServiceContext, Depends(context)]


class BearerKey(SecurityBase):
    """The caller of a route: its `Authorization: Bearer <API key>` resolved to a Principal
    (401 without a valid key), then its rate limit spent, then (403) the roles it must hold,
    when given.

    A security scheme to FastAPI, so every route that takes a Caller says so in the OpenAPI
    document; it reads the header itself, with the Request as its only parameter: each
    declared parameter (a Header(), the context as a sub-dependency) costs a resolution and a
    validation pass on every request, on the write path too, and so would a role check as a
    dependency of its own (`BearerKey(Role.X)` does it in the same call). A request is
    authenticated once: a second BearerKey of the same route (FastAPI caches dependencies per
    callable) takes the principal the first one found, and spends no second token."""

    def __init__(self, *roles: Role) -> None:
        self.model = HTTPBearerModel(
            description="an API key bound to one organisation and a set of roles; issue one"
            " with `twinaid keys issue`"
        )
        self.scheme_name = "apiKey"
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:
        principal: Principal | None = request.scope.get(_PRINCIPAL)
        if principal is None:
            ctx: ServiceContext = request.app.state.ctx
            assert ctx.auth is not None
            principal = await ctx.auth.authenticate(header(request, b"authorization"))
            await ctx.rate_limiter.take(principal.key_id)
            request.scope[_PRINCIPAL] = principal
        if self.roles:
            principal.require(*self.roles)
        return principal


_PRINCIPAL = "twinaid.principal"  # where a request's principal is kept once authenticated
authenticate = BearerKey()
Caller = Annotated[Principal, Depends(authenticate)]


def etag(version: int) -> str:
    """The ETag of a versioned record: its stream version, quoted (a strong validator, as
    If-Match compares strongly; every viewer's representation of a version has the same one)."""
    return f'"{version}"'


async def _if_match(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=22,
            pattern=r'^(\*|W/"[0-9]{1,18}"|"[0-9]{1,18}"|[0-9]{1,18})$',
            description='the ETag you last read (`"3"`), or its bare version number (`3`):'
            " the write is refused with 412 if the record has moved on since. A weak tag"
            ' (`W/"3"`, as a compressing proxy may hand on) never matches, as If-Match compares'
            " strongly (412); `*` matches whatever version the record is at",
            examples=['"3"'],
        ),
    ] = None,
) -> int | None:  # async: no worker thread
    if if_match is None or if_match == "*":
        return None  # the update is refused with 404 anyway when the record does not exist
    if if_match.startswith("W/"):
        return errors.WEAK_TAG
    return int(if_match.strip('"'))


# the version an update expects (If-Match: an ETag or a bare number), None without the header
IfMatch = Annotated[int | None, Depends(_if_match)]


def metadata_for(
    principal: Principal, *, idempotency_key: str | None = None, causation_id: str | None = None
) -> Metadata:
    return Metadata(
        actor=principal.key_id,
        organisation=principal.organisation,
        correlation_id=logs.correlation_id.get(),
        causation_id=causation_id,
        # a digest: event metadata reaches the broker and the feeds, the caller's key must not
        idempotency_key=idempotency_key
        and published.idempotency_digest(principal.organisation, idempotency_key),
    )
