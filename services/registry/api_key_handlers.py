"""The registry's API key use cases: load the key, decide, append its event, write its row.

The caller owns the transaction: the event and the row commit together, so the registry answers
with the change at once, and the other services learn it from the event (shared/api_keys.py).
A key's events form the stream `api_key-<key id>`; its row is the state decisions read (locked
while deciding), which also covers keys the operator issued outside the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.registry import events as ev
from services.registry.domain import api_keys as keys
from shared import api_keys, auth, pagination
from shared import projections as proj
from shared.errors import NotFound, ValidationFailed
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent

REGISTRY = "registry"


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def view(
    row: asyncpg.Record, *, now: datetime, used: Mapping[str, datetime] | None = None
) -> dict[str, Any]:
    """A key as answered (JSON values): never its secret nor the secret's hash. `used`: when
    the other services last saw it (uses_of); `last_used_at` is the latest of every service."""
    last_used_in = dict(used or {})
    if row["last_used_at"] is not None:
        last_used_in[REGISTRY] = row["last_used_at"]
    return {
        "key_id": row["key_id"],
        "organisation_id": row["organisation"],
        "roles": sorted(row["roles"]),
        "label": row["label"],
        "status": api_keys.status_of(row, now),
        "created_at": _instant(row["created_at"]),
        "expires_at": _instant(row["expires_at"]),
        "rotated_at": _instant(row["rotated_at"]),
        "revoked_at": _instant(row["revoked_at"]),
        "last_used_at": _instant(max(last_used_in.values(), default=None)),
        "last_used_in": {s: _instant(at) for s, at in sorted(last_used_in.items())},
    }


async def uses_of(
    conn: asyncpg.Connection, key_ids: Sequence[str]
) -> dict[str, dict[str, datetime]]:
    """When each key was last used at each other service, as their workers reported it."""
    found: dict[str, dict[str, datetime]] = {}
    for r in await conn.fetch(
        "SELECT key_id, service, last_used_at FROM api_key_uses WHERE key_id = ANY($1)",
        list(key_ids),
    ):
        found.setdefault(r["key_id"], {})[r["service"]] = r["last_used_at"]
    return found


async def record_uses(
    conn: asyncpg.Connection,
    *,
    service: str,
    uses: Sequence[tuple[str, datetime]],
    now: datetime,
) -> int:
    """Keep the latest use of each key at `service` (a worker's report): greatest of what was
    held and what comes, so a late or repeated report never moves it back; a use said to lie
    ahead of `now` counts as now. Keys the registry does not hold are left out. No event: a
    use changes nothing in the domain. Returns how many keys it names that the registry holds."""
    latest: dict[str, datetime] = {}
    for key_id, at in uses:
        if key_id not in latest or at > latest[key_id]:
            latest[key_id] = at
    if service == REGISTRY or not latest:
        return 0
    status: str = await conn.execute(
        "INSERT INTO api_key_uses (key_id, service, last_used_at)"
        " SELECT u.key_id, $1, least(u.at, $4)"
        " FROM unnest($2::text[], $3::timestamptz[]) AS u(key_id, at)"
        " JOIN api_keys k ON k.key_id = u.key_id"
        " ON CONFLICT (key_id, service) DO UPDATE"
        " SET last_used_at = greatest(api_key_uses.last_used_at, EXCLUDED.last_used_at)",
        service,
        list(latest),
        list(latest.values()),
        now,
    )
    return int(status.rsplit(" ", 1)[-1])


async def _require_organisation(conn: asyncpg.Connection, organisation_id: str) -> None:
    if not await conn.fetchval(
        "SELECT true FROM organisations WHERE organisation_id = $1", organisation_id
    ):
        raise NotFound(f"organisation {organisation_id} does not exist")


async def load_key(conn: asyncpg.Connection, key_id: str) -> keys.ApiKey:
    """The key's state from its row, locked until the transaction ends."""
    row = await api_keys.row_of(conn, key_id, for_update=True)
    if row is None:
        return keys.ApiKey(key_id)
    version = await PostgresEventStore(conn).current_version(f"{ev.STREAM_API_KEY}-{key_id}")
    return keys.ApiKey(
        key_id=key_id,
        organisation_id=row["organisation"],
        roles=tuple(row["roles"]),
        label=row["label"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        version=version,
    )


async def _record(
    conn: asyncpg.Connection,
    key_id: str,
    version: int,
    events: Sequence[NewEvent],
    *,
    metadata: Metadata,
    now: datetime,
) -> None:
    await proj.record(
        conn,
        (),
        stream_type=ev.STREAM_API_KEY,
        stream_id=key_id,
        expected_version=version,
        events=events,
        metadata=metadata,
        now=now,
    )


async def _answer(conn: asyncpg.Connection, key_id: str, *, now: datetime) -> dict[str, Any]:
    row = await api_keys.row_of(conn, key_id)
    assert row is not None
    used = await uses_of(conn, [key_id])
    return view(row, now=now, used=used.get(key_id))


async def issue(
    conn: asyncpg.Connection,
    *,
    organisation_id: str,
    roles: Sequence[auth.Role],
    label: str,
    expires_at: datetime | None,
    manager: keys.Manager,
    metadata: Metadata,
    now: datetime,
    by_operator: bool = False,
) -> dict[str, Any]:
    """The new key as answered, with its `token` (the only time it is shown). Forbidden,
    NotFound (an organisation the registry does not hold) or ValidationFailed first.

    `by_operator`: `twinaid keys issue`, run by whoever runs the databases. Its key expires
    at `expires_at` exactly (None: never; it must lie ahead), not under the HTTP policy, and
    may name an organisation the registry does not hold (the CLI lets only operator roles do
    that: the dev stack's `twinaid`)."""
    keys.check_manages(manager, organisation_id)
    if not by_operator:
        await _require_organisation(conn, organisation_id)
    elif expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "expires_at must lie in the future",
            extra={"invalid_params": [{"name": "expires_at", "reason": "in the past"}]},
        )
    key_id, token, digest = auth.new_key()
    events = keys.issue(
        key_id=key_id,
        organisation_id=organisation_id,
        roles=roles,
        label=label,
        expires_at=None if by_operator else expires_at,
        secret_sha256=digest.hex(),
        manager=manager,
        now=now,
    )
    if by_operator:  # the expiry asked for, not the HTTP default
        data = ev.ApiKeyIssued.model_validate(events[0].data).model_copy(
            update={"expires_at": expires_at}
        )
        events = [NewEvent(ev.API_KEY_ISSUED, ev.payload(data), occurred_at=now)]
    await _record(conn, key_id, 0, events, metadata=metadata, now=now)
    issued = ev.ApiKeyIssued.model_validate(events[0].data)
    await api_keys.store_issued(
        conn,
        key_id=key_id,
        digest=digest,
        organisation=organisation_id,
        roles=issued.roles,
        label=issued.label,
        expires_at=issued.expires_at,
        at=now,
    )
    return {**await _answer(conn, key_id, now=now), "token": token}


async def rotate(
    conn: asyncpg.Connection,
    *,
    organisation_id: str,
    key_id: str,
    expires_at: datetime | None,
    manager: keys.Manager,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    """The key with its new `token` (shown once) and expiry; its previous secret is refused
    from the commit on (here; elsewhere once they applied the event)."""
    keys.check_manages(manager, organisation_id)
    state = await load_key(conn, key_id)
    token, digest = auth.new_secret(key_id)
    events = keys.rotate(
        state,
        organisation_id=organisation_id,
        expires_at=expires_at,
        secret_sha256=digest.hex(),
        manager=manager,
        now=now,
    )
    await _record(conn, key_id, state.version, events, metadata=metadata, now=now)
    rotated = ev.ApiKeyRotated.model_validate(events[0].data)
    await api_keys.store_rotated(
        conn, key_id=key_id, digest=digest, expires_at=rotated.expires_at, at=now
    )
    return {**await _answer(conn, key_id, now=now), "token": token}


async def revoke(
    conn: asyncpg.Connection,
    *,
    organisation_id: str,
    key_id: str,
    reason: str | None,
    manager: keys.Manager,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    keys.check_manages(manager, organisation_id)
    state = await load_key(conn, key_id)
    events = keys.revoke(
        state, organisation_id=organisation_id, reason=reason, manager=manager, now=now
    )
    await _record(conn, key_id, state.version, events, metadata=metadata, now=now)
    await api_keys.store_revoked(conn, key_id=key_id, at=now)
    return await _answer(conn, key_id, now=now)


async def one(
    conn: asyncpg.Connection,
    *,
    organisation_id: str,
    key_id: str,
    manager: keys.Manager,
    now: datetime,
) -> dict[str, Any]:
    keys.check_reads(manager, organisation_id)
    row = await api_keys.row_of(conn, key_id)
    if row is None or row["organisation"] != organisation_id:
        raise NotFound(f"organisation {organisation_id} has no API key {key_id}")
    used = await uses_of(conn, [key_id])
    return view(row, now=now, used=used.get(key_id))


async def listed(
    conn: asyncpg.Connection,
    *,
    organisation_id: str,
    include_revoked: bool,
    cursor: str | None,
    limit: int,
    manager: keys.Manager,
    now: datetime,
) -> dict[str, Any]:
    """An organisation's keys, oldest first, a page at a time (`next_cursor`)."""
    keys.check_reads(manager, organisation_id)
    after = pagination.decode(cursor, parts=(datetime, str))
    await _require_organisation(conn, organisation_id)
    rows = await api_keys.rows_of(
        conn,
        organisation_id,
        include_revoked=include_revoked,
        after=(after[0], after[1]) if after else None,
        limit=limit + 1,
    )
    items, next_cursor = pagination.page(
        rows, limit=limit, key_of=lambda r: [r["created_at"].isoformat(), r["key_id"]]
    )
    used = await uses_of(conn, [r["key_id"] for r in items])
    return {
        "items": [view(r, now=now, used=used.get(r["key_id"])) for r in items],
        "next_cursor": next_cursor,
    }
