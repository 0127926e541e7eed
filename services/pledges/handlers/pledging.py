"""Pledges that arrive together (a group commit): one transaction, each decided by the
MakePledge handler itself, as it would be alone (shared/group_commit.py).

What every pledge of the batch reads is read once, before any is decided, in the order a
pledge alone reads it: the shared locks of every need the batch answers (one statement, in
the order a pledge alone takes its own, so no batch and no change to a need can deadlock),
then, in one statement each, the streams of those needs and of the pledges made (a new
pledge's is empty) and which organisations the pledges name are in the directory. Each
handler then decides on that and on the pledges before it in the batch; their events are
appended in one round trip and projected once.

A pledge with a contact is not batched: its person is sealed (written) before it is
decided, which a refusal must undo (`batchable`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.pledges import commands, projections
from services.pledges.handlers import HANDLERS, NEEDS, PLEDGES
from services.pledges.handlers.ports import PostgresPorts
from shared import directory, group_commit
from shared.event_store import PostgresEventStore


def batchable(command: commands.MakePledge) -> bool:
    return command.pledge.contact is None


@dataclass(frozen=True, slots=True)
class _BatchPorts(PostgresPorts):
    """The batch's need locks are taken and its organisations looked up: what a pledge of
    the batch asks of them is answered from that."""

    locked: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()

    async def require_organisations(self, organisations: Mapping[str, str]) -> None:
        directory.check_known(organisations, self.known)

    async def lock_need(self, need_id: str, *, shared: bool = False) -> None:
        if not (shared and need_id in self.locked):
            # named, not super(): a slots dataclass is a new class, zero-argument super() fails
            await PostgresPorts.lock_need(self, need_id, shared=shared)


async def make_pledges_together(
    conn: asyncpg.Connection, batch: Sequence[group_commit.Batched], *, savepoints: bool = False
) -> list[Any]:
    """Each pledge's answer, or the error it raised, in order (group_commit.run_together), in
    the caller's transaction. Raises ConcurrencyConflict (a pledge id taken meanwhile by
    another transaction: nothing of the batch stays, each runs again) or SavepointsNeeded."""
    pledges = [item.command_as(commands.MakePledge).pledge for item in batch]
    needs = sorted({s.need_id for p in pledges for s in p.lines if s.need_id is not None})
    if needs:  # in the order of the array: sorted, as a pledge alone takes its own
        await conn.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtext('need:' || n)) FROM unnest($1::text[]) n",
            needs,
        )
    streams = [NEEDS.stream_id(n) for n in needs]
    streams += [PLEDGES.stream_id(p.pledge_id) for p in pledges]
    store = group_commit.BatchStore(conn, await PostgresEventStore(conn).read_streams(streams))
    named = {o for p in pledges for o in (p.donor_id, p.recipient_id)}
    ports = _BatchPorts(
        conn, locked=frozenset(needs), known=frozenset(await directory.known(conn, named))
    )
    return await group_commit.run_together(
        conn,
        HANDLERS,
        batch,
        projections=projections.ALL,
        store=store,
        ports=ports,
        savepoints=savepoints,
    )
