"""Webhooks: an organisation's subscriptions to its service's events, delivered by the worker.

What a subscriber receives (the rule, enforced here for every service):
- Only what the API key that created the subscription could read through this service's API,
  decided when the event is delivered, with the same policy functions as the API:
  * a key with a role that reads the raw event feed (`GET /v1/events`: auditor, service)
    receives every event as the feed shows it (data, metadata, chain hash);
  * any other key receives an event only if the service's `Access` function (its API's read
    policy: services/<name>/webhook_access.py) lets that key read the record, and receives the
    event's data redacted as the API redacts it for that key (pledges: a record's events
    only for the organisations concerned, as its history; shipments: convoy parties only, named
    people and other donors' figures withheld by `access.seen_by`; registry: contacts only for
    the organisation itself and registry administrators), never the metadata or hash;
  * a service that declares no `Access` delivers to feed readers only;
  * a key revoked (or expired) since disables the subscription: nothing more is delivered.
- Filters only narrow that set: event types, record (stream) ids, and `own_records` (only
  records the subscriber's organisation is a party to).

Delivery (the Standard Webhooks specification): a POST of the JSON payload
`{"type", "timestamp", "data"}` with `webhook-id` (the event id: the same on every retry and
replay, so receivers de-duplicate), `webhook-timestamp` (Unix seconds of the attempt) and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the subscription's
`whsec_` secret, signed by the `standardwebhooks` library). A 2xx answer is a delivery; any
other answer, a timeout or a refused address is a failure, logged with its outcome, and the
same event is tried again after `webhook_retry_base * 2^(failures - 1)` seconds (at most
`webhook_retry_max`), never skipped: events arrive in log order. A subscription failing for
longer than `webhook_failing_after` is marked `failing` and keeps being retried.

Each subscription has its own cursor (the last position handled): a round reads at most a
batch of events after it, so its cost depends on the new events only, not on the log's length.
Several worker replicas share the work: a subscription is leased to one at a time.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from standardwebhooks import Webhook

from shared import db as dbmod
from shared.auth import Principal, Role
from shared.event_store import PostgresEventStore
from shared.events import RecordedEvent
from shared.settings import Settings

log = logging.getLogger("twinaid.webhooks")

# the roles that read the raw event feed (shared/routes.py, GET /v1/events)
FEED_ROLES = (Role.AUDITOR, Role.SERVICE)
MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class Seen:
    """An event as one key may read it through the API. `concerns`: the organisations the
    record concerns (its parties); `data`: the event's data redacted for the key, None when
    the key may not read the record at all."""

    concerns: frozenset[str]
    data: Mapping[str, Any] | None


# a service's read policy for its own events: (connection, reader, event) -> what it sees
Access = Callable[[asyncpg.Connection, Principal, RecordedEvent], Awaitable[Seen]]


# -- addresses ---------------------------------------------------------------------------------


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allowed_hosts: Sequence[str]) -> str:
    """The URL as given, if a webhook may target it. Raises ValueError saying why not: not
    http(s), no host, credentials or a fragment in it, or a host that is loopback, private,
    link-local or otherwise not public (an IP literal or `localhost`) and not listed in
    WEBHOOK_ALLOWED_HOSTS. Names are resolved again at each delivery (address_refused)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("a webhook URL starts with http:// or https://")
    host = parts.hostname
    if not host:
        raise ValueError("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL may not hold credentials: verify the signature instead")
    if parts.fragment:
        raise ValueError("the URL may not have a fragment (#...)")
    if host in allowed_hosts:
        return url
    if host == "localhost" or host.endswith(".localhost"):
        raise ValueError(f"{host} is not a public address (WEBHOOK_ALLOWED_HOSTS lists exceptions)")
    try:
        public = _public(host)
    except ValueError:
        return url  # a name: checked when resolved, at each delivery
    if not public:
        raise ValueError(f"{host} is not a public address (WEBHOOK_ALLOWED_HOSTS lists exceptions)")
    return url


async def address_refused(url: str, *, allowed_hosts: Sequence[str]) -> str | None:
    """Why a delivery to `url` may not be made now (its name resolves to an address that is not
    public, or does not resolve), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in allowed_hosts:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host} does not resolve: {exc}"
    for *_, address in found:
        if not _public(str(address[0])):
            return f"{host} resolves to {address[0]}, which is not a public address"
    return None


# -- subscriptions -----------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


SUBSCRIPTION = (
    "subscription_id, organisation, key_id, url, event_types, streams, own_records,"
    " description, created_at, after_position, revision, status, failing_since, attempts,"
    " next_attempt_at, last_error"
)


async def create(
    conn: asyncpg.Connection,
    *,
    principal: Principal,
    url: str,
    event_types: Sequence[str],
    streams: Sequence[str],
    own_records: bool,
    description: str,
    from_position: int | None,
) -> tuple[asyncpg.Record, str]:
    """A new subscription and its secret. Deliveries start after the log's head, or at
    `from_position` (1: the whole log the key may read)."""
    secret = new_secret()
    after = (from_position - 1) if from_position is not None else await head(conn)
    row = await conn.fetchrow(
        "INSERT INTO webhook_subscriptions (subscription_id, organisation, key_id, url,"
        " event_types, streams, own_records, description, secret, created_at, after_position,"
        " status, next_attempt_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10, 'active', now())"
        f" RETURNING {SUBSCRIPTION}",
        "wh_" + secrets.token_hex(8),
        principal.organisation,
        principal.key_id,
        url,
        list(event_types),
        list(streams),
        own_records,
        description,
        secret,
        after,
    )
    return row, secret


async def head(conn: asyncpg.Connection) -> int:
    """The log's last sealed position (0: empty)."""
    return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM event_chain"))


async def listed(conn: asyncpg.Connection, *, organisation: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {SUBSCRIPTION} FROM webhook_subscriptions"
            " WHERE organisation = $1 AND deleted_at IS NULL ORDER BY created_at, subscription_id",
            organisation,
        )
    )


async def one(
    conn: asyncpg.Connection, *, organisation: str, subscription_id: str
) -> asyncpg.Record | None:
    """The organisation's subscription (None: none by that id, or another organisation's)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {SUBSCRIPTION} FROM webhook_subscriptions"
        " WHERE subscription_id = $1 AND organisation = $2 AND deleted_at IS NULL",
        subscription_id,
        organisation,
    )
    return row


async def delete(conn: asyncpg.Connection, *, organisation: str, subscription_id: str) -> bool:
    """Stop a subscription (its delivery log is kept). False: no such subscription."""
    status: str = await conn.execute(
        "UPDATE webhook_subscriptions SET deleted_at = now(), leased_until = NULL"
        " WHERE subscription_id = $1 AND organisation = $2 AND deleted_at IS NULL",
        subscription_id,
        organisation,
    )
    return status.endswith(" 1")


async def replay(
    conn: asyncpg.Connection, *, organisation: str, subscription_id: str, from_position: int
) -> asyncpg.Record | None:
    """Deliver again from `from_position` on (events already delivered are sent again, with
    their same webhook-id): the cursor moves back, failures are forgotten, the next round
    starts at once."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "UPDATE webhook_subscriptions SET after_position = $3, revision = revision + 1,"
        " attempts = 0, failing_since = NULL, last_error = NULL, next_attempt_at = now(),"
        " leased_until = NULL, status = CASE WHEN status = 'disabled' THEN status ELSE 'active' END"
        " WHERE subscription_id = $1 AND organisation = $2 AND deleted_at IS NULL"
        f" RETURNING {SUBSCRIPTION}",
        subscription_id,
        organisation,
        from_position - 1,
    )
    return row


async def deliveries(
    conn: asyncpg.Connection, *, subscription_id: str, after: int, limit: int
) -> list[asyncpg.Record]:
    """Attempts in the order they were made, after a delivery id."""
    return list(
        await conn.fetch(
            "SELECT delivery_id, position, event_id, event_type, attempt, attempted_at, outcome,"
            " status_code, error, duration_ms FROM webhook_deliveries"
            " WHERE subscription_id = $1 AND delivery_id > $2 ORDER BY delivery_id LIMIT $3",
            subscription_id,
            after,
            limit,
        )
    )


# -- what one subscriber receives --------------------------------------------------------------


async def reader_of(conn: asyncpg.Connection, key_id: str) -> Principal | None:
    """The subscribing key as it is now: None once revoked or expired."""
    row = await conn.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
    if row is None or row["revoked_at"] is not None:
        return None
    expires = row["expires_at"] if "expires_at" in row else None
    if expires is not None and expires <= datetime.now(UTC):
        return None
    roles = frozenset(Role(r) for r in row["roles"] if r in {x.value for x in Role})
    return Principal(key_id=key_id, organisation=row["organisation"], roles=roles)


@dataclass(frozen=True, slots=True)
class Filters:
    event_types: frozenset[str]
    streams: frozenset[str]
    own_records: bool

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Filters:
        return cls(frozenset(row["event_types"]), frozenset(row["streams"]), row["own_records"])


async def payload(
    conn: asyncpg.Connection,
    *,
    service: str,
    reader: Principal,
    filters: Filters,
    event: RecordedEvent,
    access: Access | None,
) -> dict[str, Any] | None:
    """The Standard Webhooks payload of `event` for this reader, or None when the filters
    leave it out or the reader may not read it (see the module's rule)."""
    if filters.event_types and event.event_type not in filters.event_types:
        return None
    if filters.streams and event.stream_id not in filters.streams:
        return None
    feed = reader.has(*FEED_ROLES)
    seen = Seen(frozenset(), None) if access is None else await access(conn, reader, event)
    if filters.own_records and reader.organisation not in seen.concerns:
        return None
    data = event.data if feed else seen.data
    if data is None:
        return None
    body: dict[str, Any] = {
        "service": service,
        "position": event.position,
        "event_id": str(event.event_id),
        "stream_type": event.stream_type,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "data": data,
    }
    if feed:
        body["metadata"] = event.metadata.as_dict()
        body["hash"] = event.hash.hex() if event.hash else None
    return {"type": event.event_type, "timestamp": event.recorded_at.isoformat(), "data": body}


def signed(secret: str, *, msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }


# -- the dispatcher ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


CLAIM = f"""
UPDATE webhook_subscriptions SET leased_until = now() + make_interval(secs => $1)
WHERE subscription_id IN (
    SELECT subscription_id FROM webhook_subscriptions
    WHERE deleted_at IS NULL AND status <> 'disabled' AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
      AND after_position < (SELECT coalesce(max(position), 0) FROM event_chain)
    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING {SUBSCRIPTION}, secret
"""

LOG_ATTEMPT = """
INSERT INTO webhook_deliveries (subscription_id, position, event_id, event_type, attempt,
    attempted_at, outcome, status_code, error, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

DELIVERED = """
UPDATE webhook_subscriptions SET after_position = $3, attempts = 0, status = 'active',
    failing_since = NULL, last_error = NULL, leased_until = now() + make_interval(secs => $4)
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL
"""

FAILED = """
UPDATE webhook_subscriptions SET after_position = $3, attempts = attempts + 1,
    failing_since = coalesce(failing_since, now()), last_error = $4, leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => $5),
    status = CASE WHEN now() - coalesce(failing_since, now()) >= make_interval(secs => $6)
                  THEN 'failing' ELSE status END
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL
RETURNING status
"""

RELEASE = """
UPDATE webhook_subscriptions SET after_position = $3, leased_until = NULL
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL
"""

DISABLE = """
UPDATE webhook_subscriptions SET status = 'disabled', last_error = $3, leased_until = NULL
WHERE subscription_id = $1 AND revision = $2
"""


class Dispatcher:
    """Delivers each subscription's events in log order, one subscription per task (at most
    `webhook_concurrency` at once); runs in the service's worker beside the relay."""

    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        db: dbmod.Database,
        access: Access | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.db = db
        self.access = access
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        # how long a claimed subscription stays this dispatcher's without news from it
        self.lease_s = settings.webhook_timeout + 30.0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`; a failing round (the database away) is logged and retried."""
        try:
            while not stop.is_set():
                try:
                    served = await self.round()
                except Exception:
                    log.exception("a webhook round failed; trying again")
                    served = 0
                if served:
                    continue  # more may be waiting: a full batch, or another subscription
                self._wake.clear()
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
                try:
                    await asyncio.wait(
                        waits,
                        timeout=self.settings.webhook_poll_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    for w in waits:
                        w.cancel()
        finally:
            if self._own_http:
                await self.http.aclose()

    async def round(self) -> int:
        """Serve the subscriptions due now; how many were served."""
        async with self.db.connection() as conn:
            due = await conn.fetch(CLAIM, self.lease_s, self.settings.webhook_concurrency)
        await asyncio.gather(*(self._serve(row) for row in due))
        return len(due)

    async def _serve(self, sub: asyncpg.Record) -> None:
        sid, revision = sub["subscription_id"], sub["revision"]
        async with self.db.connection() as conn:
            reader = await reader_of(conn, sub["key_id"])
            if reader is None:
                log.warning("webhook %s disabled: its API key was revoked or expired", sid)
                await conn.execute(
                    DISABLE, sid, revision, "the API key that subscribed was revoked or expired"
                )
                return
            events = await PostgresEventStore(conn).read_all(
                after=sub["after_position"], limit=self.settings.webhook_batch_size
            )
            filters = Filters.of(sub)
            plan = [
                (
                    event,
                    await payload(
                        conn,
                        service=self.service,
                        reader=reader,
                        filters=filters,
                        event=event,
                        access=self.access,
                    ),
                )
                for event in events
            ]
        position = sub["after_position"]
        attempts = sub["attempts"]
        for event, body in plan:
            assert event.position is not None
            if body is not None:
                outcome = await self._attempt(sub["url"], sub["secret"], event, body)
                if not await self._record(sub, event, attempts + 1, outcome, position):
                    return
                attempts = 0
            position = event.position
        async with self.db.connection() as conn:
            await conn.execute(RELEASE, sid, revision, position)

    async def _attempt(
        self, url: str, secret: str, event: RecordedEvent, body: dict[str, Any]
    ) -> Outcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        refused = await address_refused(url, allowed_hosts=self.settings.webhook_allowed_hosts)
        if refused is not None:
            return Outcome(False, None, refused, took())
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        headers = signed(secret, msg_id=str(event.event_id), at=datetime.now(UTC), body=text)
        headers["user-agent"] = f"twinaid-{self.service}-webhooks"
        try:
            # the answer's status only: its body is never read (a receiver cannot flood us)
            async with self.http.stream(
                "POST",
                url,
                content=text.encode(),
                headers=headers,
                timeout=self.settings.webhook_timeout,
            ) as answer:
                code = answer.status_code
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR], took())
        if 200 <= code < 300:
            return Outcome(True, code, None, took())
        return Outcome(False, code, f"the receiver answered {code}", took())

    async def _record(
        self,
        sub: asyncpg.Record,
        event: RecordedEvent,
        attempt: int,
        outcome: Outcome,
        position_before: int,
    ) -> bool:
        """Log the attempt and move the subscription on (delivered) or back off (failed);
        False when the serving stops here: a failure, or the subscription replayed or
        deleted meanwhile (its new state wins)."""
        sid, revision = sub["subscription_id"], sub["revision"]
        async with self.db.transaction() as conn:
            await conn.execute(
                LOG_ATTEMPT,
                sid,
                event.position,
                event.event_id,
                event.event_type,
                attempt,
                datetime.now(UTC),
                "delivered" if outcome.delivered else "failed",
                outcome.status_code,
                outcome.error,
                outcome.duration_ms,
            )
            if outcome.delivered:
                moved: str = await conn.execute(
                    DELIVERED, sid, revision, event.position, self.lease_s
                )
                return moved.endswith(" 1")
            s = self.settings
            delay = min(s.webhook_retry_base * 2 ** min(attempt - 1, 60), s.webhook_retry_max)
            status = await conn.fetchval(
                FAILED,
                sid,
                revision,
                position_before,
                outcome.error,
                delay,
                s.webhook_failing_after,
            )
        if status == "failing" and sub["status"] != "failing":
            log.warning("webhook %s is failing: %s", sid, outcome.error)
        return False
