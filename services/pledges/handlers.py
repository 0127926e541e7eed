"""Pledges use cases: load, decide, append, project. The caller owns the transaction.

Every use case loads the streams it decides on before its first write (see
shared/event_store.py). Events on a need's stream carry the need's correlation id, events on a
pledge's stream the pledge's, which is the first answered need's: need -> pledge -> commitment
-> delivery -> fulfilment share one correlation id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from services.pledges import domain, privacy, projections, queries
from services.pledges import events as ev
from shared import directory, errors
from shared import projections as proj
from shared.event_store import PostgresEventStore, fold
from shared.events import Metadata, NewEvent


async def load_need(
    conn: asyncpg.Connection, need_id: str, *, as_of: datetime | None = None
) -> domain.Need:
    history = await PostgresEventStore(conn).read_stream(f"need-{need_id}", as_of=as_of)
    return fold(history, domain.Need(need_id), domain.evolve_need)


async def load_pledge(
    conn: asyncpg.Connection, pledge_id: str, *, as_of: datetime | None = None
) -> domain.Pledge:
    history = await PostgresEventStore(conn).read_stream(f"pledge-{pledge_id}", as_of=as_of)
    return fold(history, domain.Pledge(pledge_id), domain.evolve_pledge)


async def _lock_need(conn: asyncpg.Connection, need_id: str, *, shared: bool = False) -> None:
    """A pledge answering a need and the need's closing (or revision, or cancellation) cannot
    cross each other: a change to the need takes its lock alone, a pledge shares it with the
    other pledges to the need. A pledge decides on the need's state (active, its recipient,
    unit or currency), never on what others pledged (no rule caps pledges at the target), so
    pledges to one need run side by side; a change waits for those under way, and those
    after it see it."""
    lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {lock}(hashtext('need:' || $1))", need_id)


async def _record(
    conn: asyncpg.Connection,
    *,
    stream_type: str,
    stream_id: str,
    version: int,
    events: Sequence[NewEvent],
    metadata: Metadata,
    now: datetime,
) -> int:
    """Append after `version` and project; returns the stream's new version."""
    recorded = await proj.record(
        conn,
        projections.ALL,
        stream_type=stream_type,
        stream_id=stream_id,
        expected_version=version,
        events=events,
        metadata=metadata,
        now=now,
    )
    return recorded[-1].stream_version if recorded else version


def _correlated(metadata: Metadata, correlation_id: str | None) -> Metadata:
    return replace(metadata, correlation_id=correlation_id or metadata.correlation_id)


async def post_need(
    conn: asyncpg.Connection,
    command: domain.PostNeed,
    *,
    acting_for: str | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await load_need(conn, command.need_id)
    await directory.require(conn, command.recipient_id, field="recipient_id")
    # the contact sealed in this transaction, as the recipient records it (shared/privacy.py)
    contact = await privacy.seal_contact(conn, command.recipient_id, command.contact, now=now)
    command = replace(command, contact=contact)
    events = domain.post_need(state, command, now=now, acting_for=acting_for)
    version = await _record(
        conn,
        stream_type=ev.STREAM_NEED,
        stream_id=command.need_id,
        version=0,
        events=events,
        metadata=metadata,
        now=now,
    )
    return {
        "need_id": command.need_id,
        "status": "open",
        "version": version,
        "correlation_id": metadata.correlation_id,
    }


async def change_need(
    conn: asyncpg.Connection,
    need_id: str,
    decide: Callable[[domain.Need], list[NewEvent]],
    *,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    """`decide(state) -> events`: a revision, a closing or a cancellation."""
    await _lock_need(conn, need_id)
    state = domain.require_need(await load_need(conn, need_id))
    errors.check_if_match(state.version, if_match)
    events = decide(state)
    version = await _record(
        conn,
        stream_type=ev.STREAM_NEED,
        stream_id=need_id,
        version=state.version,
        events=events,
        metadata=_correlated(metadata, state.correlation_id),
        now=now,
    )
    return {"need_id": need_id, "version": version, "correlation_id": state.correlation_id}


async def make_pledge(
    conn: asyncpg.Connection,
    command: domain.MakePledge,
    *,
    acting_for: str | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    answered = list(dict.fromkeys(s.need_id for s in command.lines if s.need_id is not None))
    for need_id in sorted(answered):
        await _lock_need(conn, need_id, shared=True)
    state = await load_pledge(conn, command.pledge_id)
    needs = {need_id: await load_need(conn, need_id) for need_id in answered}
    await directory.require(conn, command.donor_id, field="donor_id")
    await directory.require(conn, command.recipient_id, field="recipient_id")
    partnership = (
        await queries.partnership(conn, command.partnership_id)
        if command.partnership_id is not None
        else None
    )
    # the contact sealed in this transaction, as the donor records it (shared/privacy.py)
    contact = await privacy.seal_contact(conn, command.donor_id, command.contact, now=now)
    command = replace(command, contact=contact)
    events = domain.make_pledge(
        state, command, now=now, acting_for=acting_for, needs=needs, partnership=partnership
    )
    first_need = needs[answered[0]] if answered else None
    meta = _correlated(metadata, first_need.correlation_id if first_need else None)
    version = await _record(
        conn,
        stream_type=ev.STREAM_PLEDGE,
        stream_id=command.pledge_id,
        version=0,
        events=events,
        metadata=meta,
        now=now,
    )
    status = "committed" if command.commit else "pledged"
    return {
        "pledge_id": command.pledge_id,
        "status": status,
        "version": version,
        "correlation_id": meta.correlation_id,
    }


async def change_pledge(
    conn: asyncpg.Connection,
    pledge_id: str,
    decide: Callable[[domain.Pledge], list[NewEvent]],
    *,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    """`decide(state) -> events`: commit, amend, withdraw, receive money, report a figure."""
    state = domain.require_pledge(await load_pledge(conn, pledge_id))
    errors.check_if_match(state.version, if_match)
    events = decide(state)
    version = await _record(
        conn,
        stream_type=ev.STREAM_PLEDGE,
        stream_id=pledge_id,
        version=state.version,
        events=events,
        metadata=_correlated(metadata, state.correlation_id),
        now=now,
    )
    after = domain.evolve_events(state, events)
    return {
        "pledge_id": pledge_id,
        "status": after.status.value,
        "version": version,
        "correlation_id": state.correlation_id,
    }


async def record_deliveries(
    conn: asyncpg.Connection,
    delivered: Mapping[str, Sequence[domain.DeliveredLine]],
    *,
    correlation_ids: Mapping[str, str | None],
    caused: Metadata,
    occurred_at: datetime,
    now: datetime,
) -> int:
    """Count one confirmed delivery towards the pledges it names ({pledge id: its lines});
    `correlation_ids` are the ones the delivery lines carry. Returns events appended. Raises
    domain.UnusableDelivery (the consumer parks the message)."""
    states = {pid: await load_pledge(conn, pid) for pid in sorted(delivered)}
    appended = 0
    for pledge_id, state in states.items():
        events = domain.record_deliveries(state, delivered[pledge_id], occurred_at=occurred_at)
        correlation = state.correlation_id or correlation_ids.get(pledge_id)
        await _record(
            conn,
            stream_type=ev.STREAM_PLEDGE,
            stream_id=pledge_id,
            version=state.version,
            events=events,
            metadata=_correlated(caused, correlation),
            now=now,
        )
        appended += len(events)
    return appended
