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

import base64
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from standardwebhooks import Webhook

from shared.auth import Principal, Role
from shared.errors import Conflict
from shared.events import RecordedEvent

log = logging.getLogger("twinaid.webhooks")

# the roles that read the raw event feed (shared/routes.py, GET /v1/events)
FEED_ROLES = (Role.AUDITOR, Role.SERVICE)
# each service's record streams, by stream type (a record's stream id is `<type>-<id>`): a
# subscription to another service's record can never match (tests/shared/test_webhook_filters.py
# holds this to the services' own STREAM_* constants)
RECORD_STREAMS: dict[str, tuple[str, ...]] = {
    "registry": ("organisation", "partnership", "api_key"),
    "pledges": ("need", "pledge"),
    "shipments": ("convoy",),
}
# the streams of the events every service appends to its own log, by service: `<kind>-<service>`
SERVICE_STREAMS = ("checkpoint", "signing-key", "redactions")
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


async def listed(
    conn: asyncpg.Connection,
    *,
    organisation: str,
    after: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[asyncpg.Record]:
    """The organisation's live subscriptions, oldest first, after (created_at, id), at most
    `limit`."""
    return list(
        await conn.fetch(
            f"SELECT {SUBSCRIPTION} FROM webhook_subscriptions"
            " WHERE organisation = $1 AND deleted_at IS NULL"
            " AND ($2::timestamptz IS NULL OR (created_at, subscription_id) > ($2, $3))"
            " ORDER BY created_at, subscription_id LIMIT $4",
            organisation,
            after[0] if after else None,
            after[1] if after else None,
            limit,
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
    starts at once. None: no such subscription. A disabled subscription (its key revoked or
    expired) is left as it is, its cursor and reason kept for resubscribing: Conflict."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "UPDATE webhook_subscriptions SET after_position = $3, revision = revision + 1,"
        " attempts = 0, failing_since = NULL, last_error = NULL, next_attempt_at = now(),"
        " leased_until = NULL, status = 'active'"
        " WHERE subscription_id = $1 AND organisation = $2 AND deleted_at IS NULL"
        " AND status <> 'disabled'"
        f" RETURNING {SUBSCRIPTION}",
        subscription_id,
        organisation,
        from_position - 1,
    )
    if row is None and await one(conn, organisation=organisation, subscription_id=subscription_id):
        raise Conflict(
            f"webhook subscription {subscription_id} is disabled (the API key that subscribed"
            " was revoked or expired) and cannot be replayed: subscribe again with a valid key,"
            " from_position = its after_position + 1"
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

    def admit(self, event: RecordedEvent) -> bool:
        """Whether the event types and record ids let the event through (`own_records` needs
        the reader's view: `payload` decides it)."""
        return (not self.event_types or event.event_type in self.event_types) and (
            not self.streams or event.stream_id in self.streams
        )


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
    if not filters.admit(event):
        return None
    feed = reader.has(*FEED_ROLES)
    seen = Seen(frozenset(), None) if access is None else await access(conn, reader, event)
    if filters.own_records and reader.organisation not in seen.concerns:
        return None
    data = event.data if feed else seen.data
    if data is None:
        return None
    body: dict[str, Any] = {"service": service, **event.as_json(), "data": data}
    if feed:
        body["hash"] = event.hash.hex() if event.hash else None
    else:  # who caused it, and the chain, are the feed roles' to see
        del body["metadata"]
    return {"type": event.event_type, "timestamp": event.recorded_at.isoformat(), "data": body}


def signed(secret: str, *, msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }
