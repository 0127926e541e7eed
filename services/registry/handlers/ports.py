"""What the registry's handlers need beyond the event store, as small ports: sealing contacts
(privacy.py), locks, the namesake and signed-twin lookups, and the API keys' rows.

`of(uow)` is the unit of work's: its `ports` attribute when it has one (InMemoryPorts in the
handler tests, a batch's in handlers/registrations.py), else PostgresPorts on its connection.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

import asyncpg

from services.registry import domain, privacy, queries, views
from services.registry import events as ev
from services.registry.domain import api_keys as keys
from services.registry.handlers.common import ORGANISATIONS, PARTNERSHIPS
from shared import api_keys
from shared.events import RecordedEvent, Selection
from shared.memory_store import InMemoryEventStore
from shared.repository import Repository, UnitOfWork

S = TypeVar("S")


class Ports(Protocol):
    async def seal_contacts(
        self, organisation_id: str, contacts: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, Any], ...]:
        """The contacts sealed, in the write's transaction (already sealed: as they are)."""
        ...

    async def same_people(
        self, held: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]
    ) -> bool:
        """Whether the contacts held (sealed) are `wanted` (in clear), in the same order."""
        ...

    async def lock(self, names: Sequence[str]) -> None:
        """Each name's lock until the transaction ends, in the order given."""
        ...

    async def namesake(
        self, country: str, keys: Sequence[str], *, other_than: str | None = None
    ) -> str | None:
        """The first organisation (by id) of `country` with a name sharing one of `keys`, but
        `other_than` (an organisation is no namesake of itself)."""
        ...

    async def parents(self, organisation_id: str, *, limit: int) -> list[str]:
        """The organisations above `organisation_id`, nearest first (its parent, that one's
        parent, ...), at most `limit`, ending before one already listed."""
        ...

    async def signed_twin(self, pair: tuple[str, str], kind: str, other_than: str) -> str | None:
        """A signed partnership of `kind` between the pair (sorted), other than `other_than`."""
        ...

    async def api_key(self, key_id: str) -> keys.ApiKey | None:
        """The key's row (None: no such key), locked until the transaction ends."""
        ...

    async def key_issued(self, issued: ev.ApiKeyIssued, *, at: datetime) -> None: ...

    async def key_rotated(self, rotated: ev.ApiKeyRotated, *, at: datetime) -> None: ...

    async def key_revoked(self, key_id: str, *, at: datetime) -> None: ...

    async def key_answer(self, key_id: str, *, now: datetime) -> dict[str, Any]:
        """The key as the API answers it (views.api_key)."""
        ...


def of(uow: UnitOfWork) -> Ports:
    found: Ports | None = getattr(uow, "ports", None)
    if found is not None:
        return found
    conn: asyncpg.Connection | None = getattr(uow, "conn", None)
    if conn is None:
        raise TypeError(f"{type(uow).__name__} has neither ports nor a connection")
    return PostgresPorts(conn, now=uow.now)


class PostgresPorts:
    def __init__(self, conn: asyncpg.Connection, *, now: datetime) -> None:
        self.conn = conn
        self.now = now

    async def seal_contacts(
        self, organisation_id: str, contacts: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, Any], ...]:
        return await privacy.seal_contacts(self.conn, organisation_id, contacts, now=self.now)

    async def same_people(
        self, held: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]
    ) -> bool:
        return await privacy.same_people(self.conn, held, wanted)

    async def lock(self, names: Sequence[str]) -> None:
        for name in names:
            await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", name)

    async def namesake(
        self, country: str, keys: Sequence[str], *, other_than: str | None = None
    ) -> str | None:
        found = await namesakes(self.conn, keys)
        return min((i for i, c in found if c == country and i != other_than), default=None)

    async def parents(self, organisation_id: str, *, limit: int) -> list[str]:
        # the read model's parent_id, written in the transaction that appends (so up to date
        # with every commit); one round trip, walking at most `limit` rows
        rows = await self.conn.fetch(
            "WITH RECURSIVE up(organisation_id, depth, seen) AS ("
            " SELECT parent_id, 1, ARRAY[organisation_id, parent_id] FROM organisations"
            " WHERE organisation_id = $1 AND parent_id IS NOT NULL"
            " UNION ALL"
            " SELECT o.parent_id, up.depth + 1, up.seen || o.parent_id"
            " FROM up JOIN organisations o ON o.organisation_id = up.organisation_id"
            " WHERE o.parent_id IS NOT NULL AND up.depth < $2"
            " AND NOT (o.parent_id = ANY(up.seen))"
            ") SELECT organisation_id FROM up ORDER BY depth",
            organisation_id,
            limit,
        )
        return [r["organisation_id"] for r in rows]

    async def signed_twin(self, pair: tuple[str, str], kind: str, other_than: str) -> str | None:
        twin: str | None = await self.conn.fetchval(
            "SELECT partnership_id FROM partnerships WHERE least(org_a, org_b) = $1"
            " AND greatest(org_a, org_b) = $2 AND kind = $3 AND status = 'signed'"
            " AND partnership_id <> $4",
            *pair,
            kind,
            other_than,
        )
        return twin

    async def api_key(self, key_id: str) -> keys.ApiKey | None:
        row = await api_keys.row_of(self.conn, key_id, for_update=True)
        if row is None:
            return None
        return keys.ApiKey(
            key_id=key_id,
            organisation_id=row["organisation"],
            roles=tuple(row["roles"]),
            label=row["label"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
        )

    async def key_issued(self, issued: ev.ApiKeyIssued, *, at: datetime) -> None:
        await api_keys.store_issued(
            self.conn,
            key_id=issued.key_id,
            digest=bytes.fromhex(issued.secret_sha256),
            organisation=issued.organisation_id,
            roles=issued.roles,
            label=issued.label,
            expires_at=issued.expires_at,
            at=at,
        )

    async def key_rotated(self, rotated: ev.ApiKeyRotated, *, at: datetime) -> None:
        await api_keys.store_rotated(
            self.conn,
            key_id=rotated.key_id,
            digest=bytes.fromhex(rotated.secret_sha256),
            expires_at=rotated.expires_at,
            at=at,
        )

    async def key_revoked(self, key_id: str, *, at: datetime) -> None:
        await api_keys.store_revoked(self.conn, key_id=key_id, at=at)

    async def key_answer(self, key_id: str, *, now: datetime) -> dict[str, Any]:
        row = await api_keys.row_of(self.conn, key_id)
        assert row is not None
        used = await queries.key_uses(self.conn, [key_id])
        return views.api_key(row, now=now, used=used.get(key_id))


async def namesakes(conn: asyncpg.Connection, keys: Sequence[str]) -> list[tuple[str, str]]:
    """(organisation id, country) of every organisation with a name sharing one of `keys`."""
    # Only the GIN index: with `country = $1` in the same scan the (generic, prepared) plan
    # ANDs in the country index, which walks every organisation of the country (all of them
    # in a one-country registry: slower with every registration). No ORDER BY/LIMIT either:
    # the planner would walk the primary key. MATERIALIZED: the planner cannot see the keys
    # (a parameter) and would guess a scan of the table cheaper.
    rows = await conn.fetch(
        "WITH named AS MATERIALIZED ("
        " SELECT organisation_id, country FROM organisations WHERE name_skeletons && $1"
        ") SELECT organisation_id, country FROM named",
        list(keys),
    )
    return [(r["organisation_id"], r["country"]) for r in rows]


class InMemoryPorts:
    """The ports over an in-memory event store, for handler tests: namesakes and twins are
    found by folding the store's streams; contacts are 'sealed' reversibly (base64, no key);
    locks are recorded in `locked`; API key rows are kept in `keys`."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store
        self.locked: list[str] = []
        self.keys: dict[str, keys.ApiKey] = {}

    async def seal_contacts(
        self, organisation_id: str, contacts: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, Any], ...]:
        return tuple(_sealed(c) for c in contacts)

    async def same_people(
        self, held: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]
    ) -> bool:
        return list(held) == [_sealed(c) for c in wanted]

    async def lock(self, names: Sequence[str]) -> None:
        self.locked.extend(names)

    async def _records(self, repository: Repository[S]) -> list[S]:
        events = await self.store.read_all(
            after=0, limit=1_000_000, where=Selection(stream_type=repository.stream_type)
        )
        streams: dict[str, list[RecordedEvent]] = {}
        for event in events:
            streams.setdefault(event.stream_id, []).append(event)
        return [
            repository.fold(repository.initial(repository.record_id(stream_id)), stream)
            for stream_id, stream in streams.items()
        ]

    async def namesake(
        self, country: str, keys: Sequence[str], *, other_than: str | None = None
    ) -> str | None:
        return min(
            (
                o.organisation_id
                for o in await self._records(ORGANISATIONS)
                if o.country == country
                and o.organisation_id != other_than
                and {k for n in o.names for k in domain.name_keys(n)} & set(keys)
            ),
            default=None,
        )

    async def parents(self, organisation_id: str, *, limit: int) -> list[str]:
        parent_of = {o.organisation_id: o.parent_id for o in await self._records(ORGANISATIONS)}
        found: list[str] = []
        at = parent_of.get(organisation_id)
        while at is not None and at != organisation_id and at not in found and len(found) < limit:
            found.append(at)
            at = parent_of.get(at)
        return found

    async def signed_twin(self, pair: tuple[str, str], kind: str, other_than: str) -> str | None:
        for p in await self._records(PARTNERSHIPS):
            if (
                domain.pair_key(*p.organisations) == pair
                and p.kind == kind
                and p.status is domain.PartnershipStatus.SIGNED
                and p.partnership_id != other_than
            ):
                return p.partnership_id
        return None

    async def api_key(self, key_id: str) -> keys.ApiKey | None:
        return self.keys.get(key_id)

    async def key_issued(self, issued: ev.ApiKeyIssued, *, at: datetime) -> None:
        self.keys[issued.key_id] = keys.ApiKey(
            key_id=issued.key_id,
            organisation_id=issued.organisation_id,
            roles=tuple(issued.roles),
            label=issued.label,
            expires_at=issued.expires_at,
        )

    async def key_rotated(self, rotated: ev.ApiKeyRotated, *, at: datetime) -> None:
        self.keys[rotated.key_id] = replace(
            self.keys[rotated.key_id], expires_at=rotated.expires_at
        )

    async def key_revoked(self, key_id: str, *, at: datetime) -> None:
        self.keys[key_id] = replace(self.keys[key_id], revoked_at=at)

    async def key_answer(self, key_id: str, *, now: datetime) -> dict[str, Any]:
        key = self.keys[key_id]
        return {
            "key_id": key_id,
            "organisation_id": key.organisation_id,
            "roles": sorted(key.roles),
            "label": key.label,
            "revoked": key.revoked_at is not None,
        }


def _sealed(contact: Mapping[str, Any]) -> dict[str, Any]:
    """A contact as InMemoryPorts seals it: the same person, the same subject."""
    clear = {k: v for k, v in contact.items() if v is not None and k != "role"}
    text = json.dumps(clear, sort_keys=True)
    return {
        "role": contact["role"],
        "subject_id": "person-" + hashlib.sha256(text.encode()).hexdigest()[:32],
        "personal": sorted(k for k in clear if k in privacy.PERSONAL),
        "sealed": base64.b64encode(text.encode()).decode(),
    }
