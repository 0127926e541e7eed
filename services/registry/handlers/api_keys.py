"""The registry's API key use cases: load the key, decide, append its event, write its row.

The caller owns the transaction: the event and the row commit together, so the registry answers
with the change at once, and the other services learn it from the event (shared/api_keys.py).
A key's events form the stream `api_key-<key id>`; its row is the state decisions read (locked
while deciding), which also covers keys the operator issued outside the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.registry import events as ev
from services.registry import queries, views
from services.registry.domain import api_keys as keys
from shared import api_keys, auth
from shared import projections as proj
from shared.errors import ValidationFailed
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent


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
    if service == views.REGISTRY or not latest:
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
    used = await queries.key_uses(conn, [key_id])
    return views.api_key(row, now=now, used=used.get(key_id))


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
        await queries.require_organisation(conn, organisation_id)
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
