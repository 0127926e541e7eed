"""API keys: `Authorization: Bearer twa_<key id>_<secret>`, bound to one organisation and roles.

Only a SHA-256 of the secret is stored (secrets are 256-bit random, so a slow hash adds nothing),
and it is compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

import asyncpg

from shared.errors import Forbidden, Unauthenticated


class Role(StrEnum):
    MEMBER = "member"
    LOGISTICS = "logistics"
    AUDITOR = "auditor"
    REGISTRY_ADMIN = "registry_admin"
    # service-to-service: a worker catching up from another service's event feed
    SERVICE = "service"


_ROLES = frozenset(r.value for r in Role)


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    organisation: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    def require(self, *roles: Role) -> None:
        if not self.has(*roles):
            wanted = ", ".join(r.value for r in roles)
            raise Forbidden(f"this key lacks the role needed here (one of: {wanted})")

    def require_acting_for(self, organisation: str, *, unless: tuple[Role, ...] = ()) -> None:
        """A key acts only for its own organisation, unless it holds one of `unless`."""
        if organisation != self.organisation and not self.has(*unless):
            raise Forbidden(
                f"this key belongs to organisation {self.organisation} and may not act for"
                f" {organisation}"
            )


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    token: str


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_key() -> tuple[str, str, bytes]:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"twa_{key_id}_{secret}", _hash(secret)


def parse_token(token: str) -> tuple[str, str]:
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != "twa" or not key_id or not secret:
        raise Unauthenticated("the API key is malformed")
    return key_id, secret


async def issue(
    conn: asyncpg.Connection,
    *,
    organisation: str,
    roles: list[Role],
    label: str = "",
    token: str | None = None,
) -> IssuedKey:
    """Store a key. Pass `token` to register one key in several services' databases."""
    if token is None:
        key_id, token, digest = new_key()
    else:
        key_id, secret = parse_token(token)
        digest = _hash(secret)
    await conn.execute(
        "INSERT INTO api_keys (key_id, secret_hash, organisation, roles, label)"
        " VALUES ($1, $2, $3, $4, $5)",
        key_id,
        digest,
        organisation,
        [r.value for r in roles],
        label,
    )
    return IssuedKey(key_id=key_id, token=token)


async def revoke(conn: asyncpg.Connection, *, key_id: str) -> bool:
    status: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return status.endswith(" 1")


class Authenticator:
    """Resolves bearer tokens, caching positive answers for `ttl` seconds.

    Requests of one key that find no fresh cache entry at the same moment (under load, every
    request in flight when the entry expires) share one lookup instead of each taking a
    pooled connection for the same row."""

    def __init__(self, pool: asyncpg.Pool, *, ttl: float) -> None:
        self.pool = pool
        self.ttl = ttl
        self._cache: dict[str, tuple[float, bytes, Principal]] = {}
        self._lookups: dict[str, asyncio.Future[asyncpg.Record | None]] = {}
        self.queries = 0  # lookups that went to the database

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("send `Authorization: Bearer <API key>`")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send `Authorization: Bearer <API key>`")
        key_id, secret = parse_token(token.strip())
        digest = _hash(secret)
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            if hmac.compare_digest(cached[1], digest):
                return cached[2]
            raise Unauthenticated("the API key is not valid")
        row = await self._lookup(key_id)
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), digest):
            raise Unauthenticated("the API key is not valid or was revoked")
        principal = Principal(
            key_id=key_id,
            organisation=row["organisation"],
            roles=frozenset(Role(r) for r in row["roles"] if r in _ROLES),
        )
        if self.ttl > 0:
            self._cache[key_id] = (time.monotonic() + self.ttl, digest, principal)
        return principal

    async def _lookup(self, key_id: str) -> asyncpg.Record | None:
        """The key's row, one query at a time a key: who comes while it runs waits for it.
        Shielded: a waiter that gives up (a client gone) does not cancel it for the rest."""
        pending = self._lookups.get(key_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(key_id))
            self._lookups[key_id] = pending
            pending.add_done_callback(partial(self._looked_up, key_id))
        return await asyncio.shield(pending)

    async def _fetch(self, key_id: str) -> asyncpg.Record | None:
        self.queries += 1
        row: asyncpg.Record | None = await self.pool.fetchrow(
            "SELECT secret_hash, organisation, roles FROM api_keys"
            " WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        return row

    def _looked_up(self, key_id: str, done: asyncio.Future[asyncpg.Record | None]) -> None:
        if self._lookups.get(key_id) is done:
            del self._lookups[key_id]
        if not done.cancelled():
            done.exception()  # retrieved: raised to the waiters, if any are left
