"""API keys and signing keys, administered by the operator across the services' databases:
issuing and revoking a key as the registry's events (the operator their actor) and at once in
every service's copy, listing keys with their last use anywhere, rotating a service's checkpoint
signing key. Failed (services/cli_support.py) on what the operator must fix."""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from services import cli_databases
from services.audit import signing_keys
from services.cli_support import Failed
from services.registry.domain import api_keys as keys_domain
from services.registry.handlers import api_keys as key_handlers
from shared import api_keys as shared_api_keys
from shared import auth, errors, notify
from shared.events import Metadata

# roles that act for the operator, not for a partner organisation: their keys may name an
# organisation the registry does not hold (the dev stack's "twinaid", "twinaid-audit")
OPERATOR_ROLES = frozenset({auth.Role.REGISTRY_ADMIN, auth.Role.AUDITOR, auth.Role.SERVICE})
# who `twinaid keys issue` and `revoke` name in the registry's key events (with the account)
OPERATOR_ACTOR = "operator"
OPERATOR_ORGANISATION = "twinaid"


async def check_organisation(registry_url: str, organisation: str, roles: list[auth.Role]) -> None:
    """Failed unless the registry holds `organisation`, or every role is an operator's; the
    message names registered organisations the text is a name or an alias of."""
    if set(roles) <= OPERATOR_ROLES:
        return
    async with cli_databases.connected("registry", registry_url) as conn:
        if await conn.fetchval(
            "SELECT 1 FROM organisations WHERE organisation_id = $1", organisation
        ):
            return
        similar = [
            r["organisation_id"]
            for r in await conn.fetch(
                "SELECT organisation_id FROM organisations"
                " WHERE lower(organisation_id) = lower($1) OR lower(name) = lower($1)"
                " OR EXISTS (SELECT 1 FROM unnest(aliases) a WHERE lower(a) = lower($1))"
                " ORDER BY organisation_id LIMIT 5",
                organisation,
            )
        ]
    hint = f" (did you mean {' or '.join(similar)}?)" if similar else ""
    raise Failed(
        f"keys issue: no organisation {organisation!r} in the registry{hint}; register it"
        " first (POST /v1/organisations), or give only operator roles"
        f" ({', '.join(sorted(OPERATOR_ROLES))}). Nothing was issued."
    )


def operator() -> keys_domain.Manager:
    """Who changes keys with `twinaid keys`: the operator (a registry administrator, with no
    key of its own), named in the registry's key events by the account running the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return keys_domain.Manager(
        key_id=f"{OPERATOR_ACTOR}:{user}"[:64],
        organisation=OPERATOR_ORGANISATION,
        roles=frozenset({auth.Role.REGISTRY_ADMIN}),
    )


def _copies(urls: Mapping[str, str]) -> list[tuple[str, str]]:
    """The services holding a copy of the registry's keys (every one but the registry), and
    where their databases are."""
    return [(service, url) for service, url in urls.items() if service != "registry"]


def _metadata(action: str, by: keys_domain.Manager) -> Metadata:
    return Metadata(actor=f"twinaid keys {action} ({by.key_id})", organisation=by.organisation)


async def _in_registry_log(
    url: str, change: Callable[[asyncpg.Connection], Awaitable[dict[str, Any] | None]]
) -> dict[str, Any] | None:
    """`change` in one transaction of the registry's database, which its relay is then woken
    to publish (as the registry's API does after a write)."""
    async with cli_databases.connected("registry", url) as conn:
        async with conn.transaction():
            answer = await change(conn)
        await conn.execute(f"NOTIFY {notify.CHANNEL}")
    return answer


async def keys_issue(
    urls: Mapping[str, str],
    *,
    organisation: str,
    roles: list[auth.Role],
    label: str,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """Issue a key as the registry's `registry.api-key-issued` event (the operator its actor,
    in the auditable log), once the registry knows the organisation (check_organisation;
    Failed and nothing stored otherwise). The key works at once in every service: its row is
    written into pledges' and shipments' databases too, as their consumers will apply the event
    (which then finds it held with the same secret: nothing more to do). Returns the key as
    the registry answers it, with its `token`."""
    await check_organisation(urls["registry"], organisation, roles)
    now = datetime.now(UTC)
    by = operator()

    async def issue(conn: asyncpg.Connection) -> dict[str, Any]:
        return await key_handlers.issue(
            conn,
            organisation_id=organisation,
            roles=roles,
            label=label,
            expires_at=expires_at,
            manager=by,
            metadata=_metadata("issue", by),
            now=now,
            by_operator=True,
        )

    try:
        answer = await _in_registry_log(urls["registry"], issue)
    except errors.ValidationFailed as exc:
        raise Failed(f"keys issue: {exc}. Nothing was issued.", code=2) from None
    assert answer is not None
    key_id, digest = auth.digest_of(answer["token"])
    for service, url in _copies(urls):
        async with cli_databases.connected(service, url) as conn:
            held = await conn.fetchval("SELECT secret_hash FROM api_keys WHERE key_id = $1", key_id)
            if held is None:
                await shared_api_keys.store_issued(
                    conn,
                    key_id=key_id,
                    digest=digest,
                    organisation=organisation,
                    roles=answer["roles"],
                    label=answer["label"],
                    expires_at=expires_at,
                    at=now,
                )
            elif bytes(held) != digest:  # no event could have made it: never overwritten
                raise Failed(f"{service} holds a key {key_id} with another secret")
    return answer


async def keys_revoke(
    urls: Mapping[str, str], *, key_id: str, reason: str | None = None
) -> list[str]:
    """Revoke a key as the registry's `registry.api-key-revoked` event (the operator its
    actor), and at once in every service's copy (the consumers applying the event later keep
    that revocation). Returns the services where it was active."""
    now = datetime.now(UTC)
    by = operator()

    async def revoke(conn: asyncpg.Connection) -> dict[str, Any] | None:
        row = await shared_api_keys.row_of(conn, key_id)
        if row is None or row["revoked_at"] is not None:
            return None  # not in the registry (nothing to log), or revoked there already
        return await key_handlers.revoke(
            conn,
            organisation_id=row["organisation"],
            key_id=key_id,
            reason=reason,
            manager=by,
            metadata=_metadata("revoke", by),
            now=now,
        )

    revoked = ["registry"] if await _in_registry_log(urls["registry"], revoke) else []
    for service, url in _copies(urls):
        async with cli_databases.connected(service, url) as conn:
            status = await conn.execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
                key_id,
                now,
            )
        if status.endswith(" 1"):
            revoked.append(service)
    return revoked


KEY_COLUMNS = ("key_id", "organisation", "roles", "label", "created_at", "revoked_at")
# shown when the table has them (keys that expire and record their use)
OPTIONAL_KEY_COLUMNS = ("expires_at", "last_used_at")


async def keys_list(urls: Mapping[str, str]) -> list[dict[str, object]]:
    """Every key (no secrets), with the services that know it. `last_used_at` is its latest
    use in any service (`last_used_in`: at each); a key revoked in one service shows revoked
    (its revocation is on its way to the others)."""
    keys: dict[str, dict[str, Any]] = {}
    for service, url in urls.items():
        async with cli_databases.connected(service, url) as conn:
            rows = await conn.fetch("SELECT * FROM api_keys ORDER BY created_at, key_id")
        for row in rows:
            shown = {c: row[c] for c in KEY_COLUMNS}
            shown.update({c: row[c] for c in OPTIONAL_KEY_COLUMNS if c in row})
            entry = keys.setdefault(row["key_id"], {**shown, "last_used_in": {}, "services": []})
            entry["services"].append(service)
            if entry["revoked_at"] is None:
                entry["revoked_at"] = shown["revoked_at"]
            used = shown.get("last_used_at")
            if used is not None:
                entry["last_used_in"][service] = used
                if entry.get("last_used_at") is None or used > entry["last_used_at"]:
                    entry["last_used_at"] = used
    return list(keys.values())


async def rotate_signing(service: str, url: str, key_file: Path) -> signing_keys.Rotation:
    async with cli_databases.connected(service, url) as conn:
        return await signing_keys.rotate(
            conn, service=service, key_file=key_file, now=datetime.now(UTC)
        )
