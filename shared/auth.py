"""API keys: `Authorization: Bearer twa_<key id>_<secret>`, bound to one organisation and roles.

Only a SHA-256 of the secret is stored (secrets are 256-bit random, so a slow hash adds nothing),
and it is compared in constant time. A key may expire (`expires_at`; NULL: never, as the
operator's `twinaid keys issue` makes them without `--expires`); an expired or revoked key is
refused with 401 saying which. Each API process records a key's last use in `last_used_at` at
most once a minute (USE_RECORDED_EVERY), off the request's path: never a write per request; the
workers of pledges and shipments report those uses to the registry (shared/worker.py
KeyUseReporter), whose list shows the latest use in any service.

The roles and the principal a key resolves to are pure and live in shared/principals.py (the
domains and commands name them); they are importable from here too.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg

from shared.errors import Unauthenticated
from shared.principals import Principal as Principal
from shared.principals import Role as Role

log = logging.getLogger("twinaid.auth")
# a key's use is written to its row at most this often per API process (seconds)
USE_RECORDED_EVERY = 60.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


_ROLES = frozenset(r.value for r in Role)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    token: str


class KeyExpired(Unauthenticated):
    """401 of its own type: a client can tell an expired key (rotate it) from a wrong one."""

    type_slug = "key-expired"
    title = "The API key has expired"


class KeyRevoked(Unauthenticated):
    """401 `unauthenticated` (the type clients already handle), its detail saying when."""


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def digest_of(token: str) -> tuple[str, bytes]:
    """The key id and the SHA-256 of the secret of a full token (what the tables hold)."""
    key_id, secret = parse_token(token)
    return key_id, _hash(secret)


def new_key() -> tuple[str, str, bytes]:
    key_id = secrets.token_hex(8)
    token, digest = new_secret(key_id)
    return key_id, token, digest


def new_secret(key_id: str) -> tuple[str, bytes]:
    """A fresh token for `key_id` (its rotation) and the SHA-256 of its secret."""
    secret = secrets.token_urlsafe(32)
    return f"twa_{key_id}_{secret}", _hash(secret)


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
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Store a key. Pass `token` to register one key in several services' databases;
    `expires_at` None: it never expires."""
    if token is None:
        key_id, token, digest = new_key()
    else:
        key_id, secret = parse_token(token)
        digest = _hash(secret)
    await conn.execute(
        "INSERT INTO api_keys (key_id, secret_hash, organisation, roles, label, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        key_id,
        digest,
        organisation,
        [r.value for r in roles],
        label,
        expires_at,
    )
    return IssuedKey(key_id=key_id, token=token)


async def revoke(conn: asyncpg.Connection, *, key_id: str) -> bool:
    status: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return status.endswith(" 1")


@dataclass(frozen=True, slots=True)
class _Cached:
    until: float  # monotonic deadline of the entry
    digest: bytes
    principal: Principal
    expires_at: datetime | None


class Authenticator:
    """Resolves bearer tokens, caching positive answers for `ttl` seconds.

    Requests of one key that find no fresh cache entry at the same moment (under load, every
    request in flight when the entry expires) share one lookup instead of each taking a
    pooled connection for the same row. A secret that differs from the cached one is looked up
    again (the key may have been rotated), never taken from the cache. `forget(key_id)` drops
    an entry at once (the registry, after it rotated or revoked the key). `clock` says when a
    key expired."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: float,
        clock: Callable[[], datetime] = _utcnow,
        use_recorded_every: float = USE_RECORDED_EVERY,
    ) -> None:
        self.pool = pool
        self.ttl = ttl
        self.clock = clock
        self.use_recorded_every = use_recorded_every
        self._cache: dict[str, _Cached] = {}
        self._lookups: dict[str, asyncio.Future[asyncpg.Record | None]] = {}
        self._used: dict[str, float] = {}  # key id -> monotonic time its use was last written
        self._writes: set[asyncio.Task[None]] = set()
        # key id -> times forget() was called: a lookup that began before a forget is not cached
        self._generation: dict[str, int] = {}
        self.queries = 0  # lookups that went to the database
        self.uses_recorded = 0  # writes of last_used_at

    async def authenticate(self, authorization: str | None) -> Principal:
        """The key's Principal. Raises Unauthenticated (KeyExpired, KeyRevoked: 401 naming
        why) for a missing, malformed, unknown, wrong, expired or revoked key."""
        if not authorization:
            raise Unauthenticated("send `Authorization: Bearer <API key>`")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send `Authorization: Bearer <API key>`")
        key_id, secret = parse_token(token.strip())
        digest = _hash(secret)
        cached = self._cache.get(key_id)
        if (
            cached is not None
            and cached.until > time.monotonic()
            and hmac.compare_digest(cached.digest, digest)
        ):
            self._check_expiry(key_id, cached.expires_at)
            self._note_use(key_id)
            return cached.principal
        generation = self._generation.get(key_id, 0)
        row = await self._lookup(key_id)
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), digest):
            raise Unauthenticated("the API key is not valid")
        if row["revoked_at"] is not None:
            self._cache.pop(key_id, None)
            raise KeyRevoked(
                f"API key {key_id} was revoked at {row['revoked_at'].isoformat()};"
                " ask your organisation's administrator for a new one"
            )
        expires_at: datetime | None = row["expires_at"]
        self._check_expiry(key_id, expires_at)
        principal = Principal(
            key_id=key_id,
            organisation=row["organisation"],
            roles=frozenset(Role(r) for r in row["roles"] if r in _ROLES),
        )
        # a lookup that began before the key was forgotten (rotated or revoked meanwhile) may
        # hold the old row: it answers its own request, and is not kept for later ones
        if self.ttl > 0 and self._generation.get(key_id, 0) == generation:
            self._cache[key_id] = _Cached(
                time.monotonic() + self.ttl, digest, principal, expires_at
            )
        self._note_use(key_id)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop the cached answer for a key (rotated or revoked here): its next request is
        looked up again, by a query of its own (not one begun before)."""
        self._cache.pop(key_id, None)
        self._lookups.pop(key_id, None)
        self._generation[key_id] = self._generation.get(key_id, 0) + 1

    def _check_expiry(self, key_id: str, expires_at: datetime | None) -> None:
        if expires_at is not None and expires_at <= self.clock():
            raise KeyExpired(
                f"API key {key_id} expired at {expires_at.astimezone(UTC).isoformat()};"
                " ask your organisation's administrator to rotate it or issue a new one",
                extra={"expired_at": expires_at.astimezone(UTC).isoformat()},
            )

    def _note_use(self, key_id: str) -> None:
        """Record the key's use in its row when it was not recorded for `use_recorded_every`
        seconds by this process, in a task of its own (the request does not wait for it)."""
        now = time.monotonic()
        last = self._used.get(key_id)
        if last is not None and now - last < self.use_recorded_every:
            return
        self._used[key_id] = now
        task = asyncio.ensure_future(self._record_use(key_id, self.clock()))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _record_use(self, key_id: str, at: datetime) -> None:
        # other replicas write the same row: one that wrote less than a period ago wins, so
        # the row is written about once a period whatever the number of replicas
        try:
            await self.pool.execute(
                "UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1"
                " AND (last_used_at IS NULL OR last_used_at < $3)",
                key_id,
                at,
                at - timedelta(seconds=self.use_recorded_every),
            )
            self.uses_recorded += 1
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # a closing pool or a database gone: the use goes unrecorded, the request stood
            # (not tried again before the period is over: no write per request meanwhile)
            log.warning("could not record the use of API key %s: %s", key_id, exc)

    async def drain(self) -> None:
        """Wait for the writes of last use in flight (tests, shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

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
            "SELECT secret_hash, organisation, roles, revoked_at, expires_at FROM api_keys"
            " WHERE key_id = $1",
            key_id,
        )
        return row

    def _looked_up(self, key_id: str, done: asyncio.Future[asyncpg.Record | None]) -> None:
        if self._lookups.get(key_id) is done:
            del self._lookups[key_id]
        if not done.cancelled():
            done.exception()  # retrieved: raised to the waiters, if any are left
