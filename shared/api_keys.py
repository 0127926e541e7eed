"""Organisations' own API keys (issue 21): the policy every service shares, the rows of
`api_keys`, and how pledges and shipments apply the registry's key events.

Keys are issued, rotated and revoked over HTTP by the registry (services/registry/api_keys.py),
each change an event of its log (`registry.api-key-issued`, `-rotated`, `-revoked`) carrying the
key id, organisation, roles, label, expiry and who did it, and the SHA-256 of the secret (what
the other services need to check the key; never the secret). The registry writes its own row in
the event's transaction: it answers with the new state at once. Pledges and shipments learn the
change from the registry's events through their registry subscriptions (HANDLERS below), within
the relay's delay (RELAY_POLL_INTERVAL, woken at each commit) plus their key cache
(AUTH_CACHE_TTL, 2 s): until then the others still answer as before the change.

Policy (its figures and role sets are shared/key_policy.py's, pure, which the registry's domain
decides with):
- Lifetime: an HTTP-issued key expires DEFAULT_LIFETIME (90 days) after its issue or rotation
  unless the request names an earlier or later `expires_at`, at most MAX_LIFETIME (365 days)
  ahead. Keys the operator issues with `twinaid keys issue` expire at its `--expires`, never
  without it (NULL); they are events of the log too, the operator their actor.
- Who: a `registry_admin` manages any organisation's keys and may grant any role; an
  `org_admin` manages its own organisation's keys only, and grants only ORG_GRANTABLE roles
  (member, logistics, org_admin): never registry_admin, auditor or service, which reach beyond
  one organisation. An org_admin may revoke any key of its own organisation (taking power away
  is always safe) but rotate only the keys it could have issued (a rotation hands out the
  secret). Auditors read every organisation's list and change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar

import asyncpg
from pydantic import AwareDatetime, Field

from shared import consumed
from shared.codec import EventCodec
from shared.consumer import Handler, Incoming
from shared.incoming import Implausible

ISSUED = "registry.api-key-issued"
ROTATED = "registry.api-key-rotated"
REVOKED = "registry.api-key-revoked"

COLUMNS = (
    "key_id, organisation, roles, label, created_at, expires_at, rotated_at, revoked_at,"
    " last_used_at"
)

log = logging.getLogger("twinaid.api_keys")


# -- rows -------------------------------------------------------------------------------------


async def store_issued(
    conn: asyncpg.Connection,
    *,
    key_id: str,
    digest: bytes,
    organisation: str,
    roles: Sequence[str],
    label: str,
    expires_at: datetime | None,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO api_keys (key_id, secret_hash, organisation, roles, label, created_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        key_id,
        digest,
        organisation,
        list(roles),
        label,
        at,
        expires_at,
    )


async def store_rotated(
    conn: asyncpg.Connection,
    *,
    key_id: str,
    digest: bytes,
    expires_at: datetime | None,
    at: datetime,
) -> None:
    await conn.execute(
        "UPDATE api_keys SET secret_hash = $2, expires_at = $3, rotated_at = $4 WHERE key_id = $1",
        key_id,
        digest,
        expires_at,
        at,
    )


async def store_revoked(conn: asyncpg.Connection, *, key_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE key_id = $1", key_id, at
    )


async def row_of(
    conn: asyncpg.Connection, key_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    """The key's row (no secret hash); locked until the transaction ends with `for_update`."""
    lock = " FOR UPDATE" if for_update else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM api_keys WHERE key_id = $1{lock}", key_id
    )
    return row


async def rows_of(
    conn: asyncpg.Connection,
    organisation: str,
    *,
    include_revoked: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """An organisation's keys, oldest first, after the (created_at, key_id) `after`."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {COLUMNS} FROM api_keys WHERE organisation = $1"
        " AND ($2 OR revoked_at IS NULL)"
        " AND ($3::timestamptz IS NULL OR (created_at, key_id) > ($3, $4))"
        " ORDER BY created_at, key_id LIMIT $5",
        organisation,
        include_revoked,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


def status_of(row: asyncpg.Record | dict[str, Any], now: datetime) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"


# -- pledges' and shipments' copy, from the registry's events ---------------------------------


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
KeyId = Annotated[str, Field(min_length=1, max_length=64)]
OrganisationId = Annotated[str, Field(min_length=1, max_length=200)]


class _Key(consumed.Tolerant):
    """The fields of `registry.api-key-issued` and `-rotated` that a consumer reads."""

    key_id: KeyId
    organisation_id: OrganisationId
    roles: list[str] = Field(max_length=20)
    label: str = Field(default="", max_length=100)
    expires_at: AwareDatetime | None = None
    secret_sha256: Sha256


class Issued(_Key):
    EVENT_TYPE: ClassVar[str] = ISSUED


class Rotated(_Key):
    EVENT_TYPE: ClassVar[str] = ROTATED


class Revoked(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = REVOKED

    key_id: KeyId
    organisation_id: OrganisationId


CODEC = EventCodec([Issued, Rotated, Revoked])


async def _held(conn: asyncpg.Connection, key: _Key | Revoked) -> asyncpg.Record | None:
    """The row this service holds for the key; Implausible when it belongs to another
    organisation (an event may never move a key)."""
    held: asyncpg.Record | None = await conn.fetchrow(
        "SELECT organisation, secret_hash, revoked_at FROM api_keys WHERE key_id = $1",
        key.key_id,
    )
    if held is not None and held["organisation"] != key.organisation_id:
        raise Implausible(
            f"API key {key.key_id} belongs to {held['organisation']} here, not to"
            f" {key.organisation_id}: an event may not move a key to another organisation"
        )
    return held


async def _store_new(conn: asyncpg.Connection, key: _Key, digest: bytes, *, at: datetime) -> None:
    await store_issued(
        conn,
        key_id=key.key_id,
        digest=digest,
        organisation=key.organisation_id,
        roles=key.roles,
        label=key.label,
        expires_at=key.expires_at,
        at=at,
    )


async def issued(conn: asyncpg.Connection, event: Incoming) -> None:
    """A new key. One already held (the operator's CLI writes every database) is issued
    again only with the same secret; anything else would take it over: Implausible."""
    key = consumed.read(CODEC, event, Issued)
    digest = bytes.fromhex(key.secret_sha256)
    held = await _held(conn, key)
    if held is not None:
        if bytes(held["secret_hash"]) != digest:
            raise Implausible(f"API key {key.key_id} is held here with another secret")
        return
    await _store_new(conn, key, digest, at=event.occurred_at)


async def rotated(conn: asyncpg.Connection, event: Incoming) -> None:
    """The key's new secret and expiry. A key this service never held (issued by the
    operator into the registry only) is taken from the event; a revoked one stays revoked."""
    key = consumed.read(CODEC, event, Rotated)
    at = event.occurred_at
    digest = bytes.fromhex(key.secret_sha256)
    held = await _held(conn, key)
    if held is None:
        await _store_new(conn, key, digest, at=at)
        await store_rotated(
            conn, key_id=key.key_id, digest=digest, expires_at=key.expires_at, at=at
        )
        return
    if held["revoked_at"] is not None:
        raise Implausible(f"API key {key.key_id} was revoked here: it cannot be rotated")
    await store_rotated(conn, key_id=key.key_id, digest=digest, expires_at=key.expires_at, at=at)


async def revoked(conn: asyncpg.Connection, event: Incoming) -> None:
    """The key stops working here. A key this service never held has nothing to revoke. A
    revocation is applied even to a key held here under another organisation (which no event
    could have put there): stopping a key is always safe, so it never fails open."""
    key = consumed.read(CODEC, event, Revoked)
    held = await conn.fetchrow("SELECT organisation FROM api_keys WHERE key_id = $1", key.key_id)
    if held is None:
        return
    if held["organisation"] != key.organisation_id:
        log.warning(
            "API key %s is held here under %s, revoked by the registry for %s: revoked anyway",
            key.key_id,
            held["organisation"],
            key.organisation_id,
        )
    await store_revoked(conn, key_id=key.key_id, at=event.occurred_at)


HANDLERS: dict[str, Handler] = {ISSUED: issued, ROTATED: rotated, REVOKED: revoked}
