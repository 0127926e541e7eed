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
`whsec_` secret, signed by the `standardwebhooks` library). The URL's host is resolved once
per attempt, every address checked, and the request sent to that address (the URL's Host, and
for https its name for SNI and the certificate), so a name cannot answer a public address to
the check and a private one to the connection. A 2xx answer is a delivery; any other answer,
a timeout (`webhook_timeout` for the whole attempt) or a refused address is a failure, logged
with a generic reason for the subscriber (the details go to the server's log), and the same
event is tried again after `webhook_retry_base * 2^(failures - 1)` seconds (at most
`webhook_retry_max`), never skipped: events arrive in log order. A subscription failing for
longer than `webhook_failing_after` is marked `failing` and keeps being retried.

Each subscription has its own cursor (the last position handled): a claim reads at most a
batch of events after it, so its cost depends on the new events only, not on the log's length.
Subscriptions are served independently, each claim for a bounded time (Dispatcher.budget_s),
so one slow receiver delays no other. Several worker replicas share the work: a subscription
is leased to one at a time, and a lease holder's updates name its lease.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import json
import logging
import re
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

# IPv6 addresses that carry an IPv4 address a translator or a relay turns into a connection to
# it are checked through that IPv4 address: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
# (::a.b.c.d), NAT64's well-known prefix (RFC 6052: 64:ff9b::/96, the last 32 bits), 6to4
# (2002::/16) and Teredo (2001::/32, server and client). The local-use NAT64 prefix (RFC 8215:
# 64:ff9b:1::/48, the IPv4 address where the operator chose) is refused outright.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
HOST_NAME = re.compile(
    r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$"
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo, compatible)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if int(ip) >> 32 == 0:  # ::a.b.c.d (:: and ::1 among them)
        return [ipaddress.IPv4Address(int(ip))]
    return []


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL:
            return False
        inner = _embedded_ipv4(ip)
        if inner:
            return all(v4.is_global and not v4.is_multicast for v4 in inner)
    return ip.is_global and not ip.is_multicast


def _ascii_host(url: str) -> str:
    """The URL's host as it goes on the wire (IDNA, lower case; an IPv6 literal without its
    brackets). Raises ValueError for a URL httpx would not send or a host no resolver takes."""
    try:
        host = httpx.URL(url).raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if not host:
        raise ValueError("the URL names no host")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return host
    try:
        host.encode("idna")  # every label 1 to 63 characters
    except UnicodeError:
        raise ValueError(
            "the host name is not valid (a label empty or over 63 characters)"
        ) from None
    if len(host) > 253 or not HOST_NAME.match(host):
        raise ValueError("the host name is not valid (letters, digits, hyphens, dots)")
    return host


def check_url(url: str, *, allowed_hosts: Sequence[str]) -> str:
    """The URL as given, if a webhook may target it. Raises ValueError saying why not: not a URL
    httpx sends (control characters...), not http(s), no host or one no resolver takes (a label
    over 63 characters...), credentials or a fragment in it, or a host that is loopback,
    private, link-local or otherwise not public (an IP literal, IPv4 inside IPv6 among them,
    or `localhost`) and not listed in WEBHOOK_ALLOWED_HOSTS. Names are resolved at each
    delivery, and the delivery goes to the address checked then (resolve_checked)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("a webhook URL starts with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL may not hold credentials: verify the signature instead")
    if parts.fragment:
        raise ValueError("the URL may not have a fragment (#...)")
    host = _ascii_host(url)
    if host in allowed_hosts or parts.hostname in allowed_hosts:
        return url
    if host == "localhost" or host.endswith((".localhost", ".localhost.")):
        raise ValueError(f"{host} is not a public address (WEBHOOK_ALLOWED_HOSTS lists exceptions)")
    try:
        public = _public(host)
    except ValueError:
        return url  # a name: checked when resolved, at each delivery
    if not public:
        raise ValueError(f"{host} is not a public address (WEBHOOK_ALLOWED_HOSTS lists exceptions)")
    return url


class Refused(Exception):
    """A delivery that may not be made: `reason` is what its subscriber is told (generic), the
    exception's text what the server logs (names, addresses)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for `host` (IP literals as they are)."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(address[0]) for *_, address in found]


async def resolve_checked(
    url: str, *, allowed_hosts: Sequence[str], resolve: Resolver = system_resolver
) -> str:
    """The one address a delivery to `url` connects to: its host resolved once, every address
    it resolves to public (unless the host is in WEBHOOK_ALLOWED_HOSTS). Raises Refused."""
    target = httpx.URL(url)
    host = _ascii_host(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        addresses = list(await resolve(host, port))
    except OSError as exc:
        raise Refused("name not resolved", f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise Refused("name not resolved", f"{host} resolves to no address")
    if host not in allowed_hosts and target.host not in allowed_hosts:
        for address in addresses:
            if not _public(address):
                raise Refused(
                    "address not allowed", f"{host} resolves to {address}, not a public address"
                )
    return addresses[0].split("%", 1)[0]


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


# Every update of a claimed subscription names the lease it holds (`leased_until` as claimed or
# last extended): once the lease has lapsed and another dispatcher claimed the subscription,
# the late one's updates change nothing.
CLAIM = f"""
UPDATE webhook_subscriptions SET leased_until = now() + make_interval(secs => $1)
WHERE subscription_id IN (
    SELECT subscription_id FROM webhook_subscriptions
    WHERE deleted_at IS NULL AND status <> 'disabled' AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
      AND after_position < (SELECT coalesce(max(position), 0) FROM event_chain)
      AND NOT (subscription_id = ANY($3::text[]))
    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING {SUBSCRIPTION}, secret, leased_until
"""

LOG_ATTEMPT = """
INSERT INTO webhook_deliveries (subscription_id, position, event_id, event_type, attempt,
    attempted_at, outcome, status_code, error, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

DELIVERED = """
UPDATE webhook_subscriptions SET after_position = $3, attempts = 0, status = 'active',
    failing_since = NULL, last_error = NULL, leased_until = now() + make_interval(secs => $4)
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL AND leased_until = $5
RETURNING leased_until
"""

FAILED = """
UPDATE webhook_subscriptions SET after_position = $3, attempts = attempts + 1,
    failing_since = coalesce(failing_since, now()), last_error = $4, leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => $5),
    status = CASE WHEN now() - coalesce(failing_since, now()) >= make_interval(secs => $6)
                  THEN 'failing' ELSE status END
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL AND leased_until = $7
RETURNING status
"""

RELEASE = """
UPDATE webhook_subscriptions SET after_position = $3, leased_until = NULL
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL AND leased_until = $4
"""

DISABLE = """
UPDATE webhook_subscriptions SET status = 'disabled', last_error = $3, leased_until = NULL
WHERE subscription_id = $1 AND revision = $2 AND leased_until = $4
"""


class Dispatcher:
    """Delivers each subscription's events in log order, one subscription per task (at most
    `webhook_concurrency` at once); runs in the service's worker beside the relay.

    Subscriptions are served independently: a slot freed is filled at once, whatever the
    others do. One attempt lasts at most `webhook_timeout` (resolving, connecting, sending,
    the answer's status), and one claim serves for at most `budget_s` (then the subscription
    goes back in the queue, behind those waiting): a slow receiver holds one slot, never the
    others' deliveries, and never outlives its lease (`lease_s`)."""

    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        db: dbmod.Database,
        access: Access | None = None,
        http: httpx.AsyncClient | None = None,
        resolve: Resolver = system_resolver,
        budget_s: float = 30.0,
    ) -> None:
        self.service = service
        self.settings = settings
        self.db = db
        self.access = access
        self.resolve = resolve
        self._own_http = http is None
        # no environment proxies (the request goes to the address checked); no connection kept
        # (one to an address serves one host name: its TLS was verified for that name)
        self.http = http or httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.budget_s = budget_s
        # how long a claimed subscription stays this dispatcher's without news from it: the
        # budget, one more attempt begun just before it ends, and time for the database
        self.lease_s = budget_s + settings.webhook_timeout + 30.0
        self._wake = asyncio.Event()
        self._serving: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve subscriptions until `stop`, each in its own task, claiming more as soon as a
        slot is free; a failing claim (the database away) is logged and retried."""
        try:
            while not stop.is_set():
                free = self.settings.webhook_concurrency - len(self._serving)
                claimed = 0
                if free > 0:
                    try:
                        claimed = len(self._start(await self._claim(free)))
                    except Exception:
                        log.exception("claiming webhook subscriptions failed; trying again")
                if claimed:
                    continue  # more may be waiting
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
            serving = list(self._serving.values())
            for task in serving:
                task.cancel()  # its lease lapses; an attempt cut short is sent again
            await asyncio.gather(*serving, return_exceptions=True)
            if self._own_http:
                await self.http.aclose()

    async def round(self) -> int:
        """Serve the subscriptions due now, waiting for them all; how many were served."""
        due = await self._claim(self.settings.webhook_concurrency)
        await asyncio.gather(*self._start(due), return_exceptions=True)
        return len(due)

    async def _claim(self, limit: int) -> list[asyncpg.Record]:
        async with self.db.connection() as conn:
            return list(await conn.fetch(CLAIM, self.lease_s, limit, list(self._serving)))

    def _start(self, due: Sequence[asyncpg.Record]) -> list[asyncio.Task[None]]:
        started = []
        for sub in due:
            sid = sub["subscription_id"]
            task = asyncio.create_task(self._serve_logged(sub), name=f"webhook {sid}")
            self._serving[sid] = task
            task.add_done_callback(functools.partial(self._done, sid))
            started.append(task)
        return started

    def _done(self, sid: str, _: asyncio.Task[None]) -> None:
        self._serving.pop(sid, None)
        self._wake.set()  # a free slot: claim again

    async def _serve_logged(self, sub: asyncpg.Record) -> None:
        try:
            await self._serve(sub)
        except Exception:
            # the database away mid-serving: the lease lapses and the subscription is served
            # again (an event delivered but not recorded is sent again, with its same id)
            log.exception("serving webhook %s failed", sub["subscription_id"])

    async def _serve(self, sub: asyncpg.Record) -> None:
        sid, revision, lease = sub["subscription_id"], sub["revision"], sub["leased_until"]
        claimed_at = time.monotonic()
        async with self.db.connection() as conn:
            reader = await reader_of(conn, sub["key_id"])
            if reader is None:
                log.warning("webhook %s disabled: its API key was revoked or expired", sid)
                await conn.execute(
                    DISABLE,
                    sid,
                    revision,
                    "the API key that subscribed was revoked or expired",
                    lease,
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
                if time.monotonic() - claimed_at >= self.budget_s:
                    break  # this claim's time is up: back in the queue, behind the others
                outcome = await self._attempt(sub["url"], sub["secret"], event, body)
                lease = await self._record(sub, lease, event, attempts + 1, outcome, position)
                if lease is None:
                    return
                attempts = 0
            position = event.position
        async with self.db.connection() as conn:
            await conn.execute(RELEASE, sid, revision, position, lease)

    async def _attempt(
        self, url: str, secret: str, event: RecordedEvent, body: dict[str, Any]
    ) -> Outcome:
        """One delivery, within `webhook_timeout` all told. Its error, if any, is generic (what
        the subscriber sees); the details (names, addresses, exceptions) go to the log."""
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        def failed(reason: str, detail: str, code: int | None = None) -> Outcome:
            log.info("webhook delivery of %s to %s failed: %s", event.event_id, url, detail)
            return Outcome(False, code, reason, took())

        try:
            async with asyncio.timeout(self.settings.webhook_timeout):
                code = await self._post(url, secret, event, body)
        except Refused as exc:
            return failed(exc.reason, str(exc))
        except TimeoutError:
            return failed("timed out", f"no answer within {self.settings.webhook_timeout} s")
        except httpx.TimeoutException as exc:
            return failed("timed out", f"{type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            return failed("connection failed", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a URL httpx will not send, a resolver's UnicodeError...
            return failed("delivery failed", f"{type(exc).__name__}: {exc}")
        if 200 <= code < 300:
            return Outcome(True, code, None, took())
        return failed(f"HTTP {code}", f"the receiver answered {code}", code)

    async def _post(self, url: str, secret: str, event: RecordedEvent, body: dict[str, Any]) -> int:
        """POST the event to the address its host resolves to and passed the check (never a
        second resolution, which could answer another address): the URL's host replaced by
        that address, the original `Host` header, and for https the original name for TLS
        (SNI and the certificate's check). The answer's status only: its body is never read."""
        address = await resolve_checked(
            url, allowed_hosts=self.settings.webhook_allowed_hosts, resolve=self.resolve
        )
        target = httpx.URL(url)
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        headers = signed(secret, msg_id=str(event.event_id), at=datetime.now(UTC), body=text)
        headers["user-agent"] = f"twinaid-{self.service}-webhooks"
        headers["host"] = target.netloc.decode("ascii")
        extensions = {"sni_hostname": target.raw_host.decode("ascii")}
        async with self.http.stream(
            "POST",
            target.copy_with(host=address),
            content=text.encode(),
            headers=headers,
            timeout=self.settings.webhook_timeout,
            extensions=extensions if target.scheme == "https" else None,
        ) as answer:
            return answer.status_code

    async def _record(
        self,
        sub: asyncpg.Record,
        lease: datetime,
        event: RecordedEvent,
        attempt: int,
        outcome: Outcome,
        position_before: int,
    ) -> datetime | None:
        """Log the attempt and move the subscription on (delivered: the lease, extended) or
        back off (failed); None when the serving stops here: a failure, or the subscription
        replayed, deleted or leased to another dispatcher meanwhile (their state wins)."""
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
                extended: datetime | None = await conn.fetchval(
                    DELIVERED, sid, revision, event.position, self.lease_s, lease
                )
                return extended
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
                lease,
            )
        if status == "failing" and sub["status"] != "failing":
            log.warning("webhook %s is failing: %s", sid, outcome.error)
        return None
