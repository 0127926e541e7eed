"""What the pledges handlers need beyond the event store, as small ports: the registry's copy
(organisations, partnerships), sealing a person (shared/privacy.py) and a need's lock.

A handler reaches them through its unit of work (`ports(uow)`): a unit of work that carries
`ports` (handler tests: MemoryPorts) uses those, a PostgresUnitOfWork those of its connection.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, cast

import asyncpg

from services.pledges import domain, privacy, queries
from shared import directory
from shared.repository import PostgresUnitOfWork, UnitOfWork


class Ports(Protocol):
    async def require_organisations(self, organisations: Mapping[str, str]) -> None:
        """ValidationFailed naming the first field (of field -> organisation id) whose
        organisation the registry never announced."""

    async def partnership(self, partnership_id: str) -> domain.PartnershipRef | None: ...

    async def seal_contact(
        self, organisation_id: str, contact: Mapping[str, Any] | None, *, now: datetime
    ) -> dict[str, Any] | None:
        """The contact as `organisation_id` records it, sealed (already sealed: as it is)."""

    async def carried(self, pledge_id: str, line_id: str) -> Decimal:
        """How much of a line convoys hold that no delivery has confirmed yet (loaded, on the
        road or lost on the way), as shipments announced it: an amendment cannot go below it."""

    async def lock_need(self, need_id: str, *, shared: bool = False) -> None:
        """A pledge answering a need and the need's closing (or revision, or cancellation)
        cannot cross each other: a change to the need takes its lock alone, a pledge shares
        it with the other pledges to the need. A pledge decides on the need's state (active,
        its recipient, unit or currency), never on what others pledged (no rule caps pledges
        at the target), so pledges to one need run side by side; a change waits for those
        under way, and those after it see it."""


@dataclass(frozen=True, slots=True)
class PostgresPorts:
    conn: asyncpg.Connection

    async def require_organisations(self, organisations: Mapping[str, str]) -> None:
        await directory.require(self.conn, organisations)

    async def partnership(self, partnership_id: str) -> domain.PartnershipRef | None:
        return await queries.partnership(self.conn, partnership_id)

    async def seal_contact(
        self, organisation_id: str, contact: Mapping[str, Any] | None, *, now: datetime
    ) -> dict[str, Any] | None:
        return await privacy.seal_contact(self.conn, organisation_id, contact, now=now)

    async def carried(self, pledge_id: str, line_id: str) -> Decimal:
        found = await self.conn.fetchval(
            "SELECT coalesce(sum(c.loaded), 0) FROM convoy_lines c"
            " WHERE c.pledge_id = $1 AND c.line_id = $2 AND NOT EXISTS (SELECT 1 FROM deliveries d"
            " WHERE d.convoy_id = c.convoy_id AND d.manifest_line_id = c.manifest_line_id)",
            pledge_id,
            line_id,
        )
        return Decimal(found)

    async def lock_need(self, need_id: str, *, shared: bool = False) -> None:
        lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await self.conn.execute(f"SELECT {lock}(hashtext('need:' || $1))", need_id)


@dataclass
class MemoryPorts:
    """In memory, for handler tests: the organisations and partnerships the registry
    announced; a contact "sealed" in base64 alone, under a new subject (the keys and their
    erasure are PostgreSQL's, tested there); the locks taken, as (need id, shared)."""

    organisations: set[str] = field(default_factory=set)
    partnerships: dict[str, domain.PartnershipRef] = field(default_factory=dict)
    locks: list[tuple[str, bool]] = field(default_factory=list)
    # (pledge id, line id) -> what convoys hold of it, undelivered
    on_convoys: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    async def require_organisations(self, organisations: Mapping[str, str]) -> None:
        directory.check_known(organisations, self.organisations)

    async def partnership(self, partnership_id: str) -> domain.PartnershipRef | None:
        return self.partnerships.get(partnership_id)

    async def seal_contact(
        self, organisation_id: str, contact: Mapping[str, Any] | None, *, now: datetime
    ) -> dict[str, Any] | None:
        if contact is None or "sealed" in contact:
            return None if contact is None else dict(contact)
        personal = {k: v for k, v in contact.items() if k in privacy.CONTACT and v is not None}
        sealed = base64.b64encode(json.dumps(personal).encode()).decode()
        subject = f"{privacy.SERVICE}-{uuid.uuid4().hex}"
        out = {"subject_id": subject, "personal": list(personal), "sealed": sealed}
        return out | {"role": contact.get("role")}

    async def carried(self, pledge_id: str, line_id: str) -> Decimal:
        return self.on_convoys.get((pledge_id, line_id), Decimal(0))

    async def lock_need(self, need_id: str, *, shared: bool = False) -> None:
        self.locks.append((need_id, shared))


def ports(uow: UnitOfWork) -> Ports:
    """The unit of work's ports: its own `ports` if it carries them, else those of a
    PostgresUnitOfWork's connection. TypeError for a unit of work with neither."""
    given = getattr(uow, "ports", None)
    if given is not None:
        return cast(Ports, given)
    if isinstance(uow, PostgresUnitOfWork):
        return PostgresPorts(uow.conn)
    raise TypeError(f"{type(uow).__name__} carries no pledges ports")
