"""The registry's API key use cases: load the key, decide, append its event, write its row.

The caller owns the transaction: the event and the row commit together, so the registry answers
with the change at once, and the other services learn it from the event (shared/api_keys.py).
A key's events form the stream `api_key-<key id>`; its row is the state decisions read (locked
while deciding), which also covers keys the operator issued outside the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from services.registry import commands, views
from services.registry.domain import api_keys as keys
from services.registry.handlers import common, ports
from services.registry.handlers.common import API_KEYS, HANDLERS, ORGANISATIONS
from shared import auth
from shared.errors import NotFound
from shared.events import Metadata
from shared.repository import UnitOfWork


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


async def _key(uow: UnitOfWork, key_id: str) -> keys.ApiKey:
    """The key's state from its row, locked until the transaction ends, at the version of its
    stream (0: issued outside the log, or no such key)."""
    held = await ports.of(uow).api_key(key_id)  # locked first: the version read after it
    if held is None:
        return keys.ApiKey(key_id)
    return replace(held, version=(await API_KEYS.load(uow, key_id)).version)


@HANDLERS.register(commands.IssueApiKey)
async def issue_api_key(command: commands.IssueApiKey, uow: UnitOfWork) -> dict[str, Any]:
    """The new key as answered, with its `token` (the only time it is shown). Forbidden,
    NotFound (an organisation the registry does not hold, unless `by_operator`) or
    ValidationFailed first."""
    keys.check_manages(command.manager, command.organisation_id)
    if not command.by_operator:
        if not (await ORGANISATIONS.load(uow, command.organisation_id)).exists:
            raise NotFound(f"organisation {command.organisation_id} does not exist")
    key_id, token, digest = auth.new_key()
    events = keys.issue(
        key_id=key_id,
        organisation_id=command.organisation_id,
        roles=command.roles,
        label=command.label,
        expires_at=command.expires_at,
        secret_sha256=digest.hex(),
        manager=command.manager,
        now=uow.now,
        by_operator=command.by_operator,
    )
    [issued] = API_KEYS.codec.decode_all(
        await API_KEYS.append(uow, key_id, expected_version=0, events=events)
    )
    found = ports.of(uow)
    await found.key_issued(issued.payload, at=uow.now)
    return {**await found.key_answer(key_id, now=uow.now), "token": token}


@HANDLERS.register(commands.RotateApiKey)
async def rotate_api_key(command: commands.RotateApiKey, uow: UnitOfWork) -> dict[str, Any]:
    """The key with its new `token` (shown once) and expiry; its previous secret is refused
    from the commit on (here; elsewhere once they applied the event)."""
    keys.check_manages(command.manager, command.organisation_id)
    state = await _key(uow, command.key_id)
    token, digest = auth.new_secret(command.key_id)
    events = keys.rotate(
        state,
        organisation_id=command.organisation_id,
        expires_at=command.expires_at,
        secret_sha256=digest.hex(),
        manager=command.manager,
        now=uow.now,
    )
    recorded = await API_KEYS.append(
        uow, command.key_id, expected_version=state.version, events=events
    )
    [rotated] = API_KEYS.codec.decode_all(recorded)
    found = ports.of(uow)
    await found.key_rotated(rotated.payload, at=uow.now)
    return {**await found.key_answer(command.key_id, now=uow.now), "token": token}


@HANDLERS.register(commands.RevokeApiKey)
async def revoke_api_key(command: commands.RevokeApiKey, uow: UnitOfWork) -> dict[str, Any]:
    keys.check_manages(command.manager, command.organisation_id)
    state = await _key(uow, command.key_id)
    events = keys.revoke(
        state,
        organisation_id=command.organisation_id,
        reason=command.reason,
        manager=command.manager,
        now=uow.now,
    )
    await API_KEYS.append(uow, command.key_id, expected_version=state.version, events=events)
    found = ports.of(uow)
    await found.key_revoked(command.key_id, at=uow.now)
    return await found.key_answer(command.key_id, now=uow.now)


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
    """IssueApiKey on the caller's transaction (`twinaid keys issue`: services/keys_admin.py)."""
    command = commands.IssueApiKey(
        organisation_id=organisation_id,
        roles=roles,
        label=label,
        expires_at=expires_at,
        manager=manager,
        by_operator=by_operator,
    )
    answer: dict[str, Any] = await common.run(conn, command, metadata=metadata, now=now)
    return answer


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
    """RevokeApiKey on the caller's transaction (`twinaid keys revoke`)."""
    command = commands.RevokeApiKey(
        organisation_id=organisation_id, key_id=key_id, reason=reason, manager=manager
    )
    answer: dict[str, Any] = await common.run(conn, command, metadata=metadata, now=now)
    return answer
