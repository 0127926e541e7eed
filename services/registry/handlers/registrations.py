"""Registrations that arrive together (a group commit): one transaction, each decided by the
registration handler itself (organisations.register_organisation), as it would be alone.

Before the handlers run, the batch takes every name lock of every registration, in one
statement and in the same order as a registration alone takes its own (so registrations
sharing names cannot deadlock), and then reads, in one statement, the organisations that may
be namesakes (through the names index) and which of the ids it registers or names as parents
are taken. The handlers then decide on that, and on the registrations before them in the
batch; their events are appended in one round trip (shared/group_commit.py).

A registration with contacts is not batched: its people are sealed (written) before it is
decided, which a refusal must undo (`batchable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.registry import commands, projections
from services.registry.handlers import organisations
from services.registry.handlers.common import HANDLERS, ORGANISATIONS
from services.registry.handlers.ports import PostgresPorts
from shared import group_commit
from shared.events import RecordedEvent


def batchable(command: commands.RegisterOrganisation) -> bool:
    return not command.registration.contacts


class _BatchPorts(PostgresPorts):
    """The batch's locks are taken and its namesakes read: what a registration of the batch
    asks is answered from them and from the registrations kept before it."""

    def __init__(
        self, conn: asyncpg.Connection, now: datetime, named: list[tuple[str, str, set[str]]]
    ) -> None:
        super().__init__(conn, now=now)
        self.named = named  # (organisation id, country, name keys) of every possible namesake

    async def lock(self, names: Sequence[str]) -> None:
        return None  # taken by the batch, before any registration was decided

    async def namesake(
        self, country: str, keys: Sequence[str], *, other_than: str | None = None
    ) -> str | None:
        wanted = set(keys)
        return min(
            (i for i, c, k in self.named if c == country and k & wanted and i != other_than),
            default=None,
        )

    def kept(self, item: group_commit.Batched, answer: Any) -> None:
        registration = item.command_as(commands.RegisterOrganisation).registration
        keys = set(organisations.name_keys(registration))
        self.named.append((registration.organisation_id, registration.country, keys))


async def register_together(
    conn: asyncpg.Connection, batch: Sequence[group_commit.Batched], *, savepoints: bool = False
) -> list[Any]:
    """Each registration's answer, or the error it raised, in order (group_commit.run_together),
    in the caller's transaction. Raises ConcurrencyConflict (an id registered meanwhile by
    another transaction: nothing of the batch stays, each runs again) or SavepointsNeeded."""
    registrations = [item.command_as(commands.RegisterOrganisation).registration for item in batch]
    keys = [(r.country, organisations.name_keys(r)) for r in registrations]
    ids = {r.organisation_id for r in registrations}
    ids |= {r.parent_id for r in registrations if r.parent_id is not None}
    # every name lock, then the names and ids, in one round trip (registry_batch_reads,
    # services/registry/migrations/registry_0003_no_registration_function.sql); the locks in
    # the order a registration alone takes its own
    rows = await conn.fetch(
        "SELECT * FROM registry_batch_reads($1, $2, $3)",
        sorted({x for country, k in keys for x in organisations.name_locks(country, k)}),
        sorted({x for _, k in keys for x in k}),
        sorted(ids),
    )
    named = [
        (r["organisation_id"], r["country"], set(r["name_skeletons"]))
        for r in rows
        if not r["taken"]
    ]
    taken = {r["organisation_id"] for r in rows if r["taken"]}
    # an id the registry does not hold has no stream yet (its registered event and its row
    # are written together); the others are read from the log when a handler loads them
    streams: dict[str, list[RecordedEvent]] = {ORGANISATIONS.stream_id(i): [] for i in ids - taken}
    store = group_commit.BatchStore(conn, streams)
    ports = _BatchPorts(conn, batch[0].now, named)
    return await group_commit.run_together(
        conn,
        HANDLERS,
        batch,
        projections=projections.ALL,
        store=store,
        ports=ports,
        kept=ports.kept,
        savepoints=savepoints,
    )
