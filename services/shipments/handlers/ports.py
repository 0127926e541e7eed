"""What the handlers ask of the world beyond the convoy streams: the directory of
organisations, the pledge lines (and their locks), the road entries already recorded, and the
sealing of persons. PostgresPorts answers on the write's connection; InMemoryPorts in handler
tests (tests/shipments/test_handlers.py). `ports_of(uow)` is the unit of work's: the one a test
set on it (`uow.ports`), else PostgreSQL's on its connection.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from services.shipments import domain
from services.shipments import events as ev
from services.shipments.handlers import ledger, sealing
from services.shipments.handlers.repositories import CONVOYS
from shared import directory
from shared.event_store import EventStore
from shared.repository import UnitOfWork
from shared.rows import COLUMNS, from_row

__all__ = ["InMemoryPorts", "Ports", "PostgresPorts", "ports_of", "recorded_entries"]

PledgeLines = dict[tuple[str, str], domain.PledgeLine]


class Ports(Protocol):
    async def require_organisations(self, organisations: Mapping[str, str]) -> None:
        """ValidationFailed naming the first field (of field -> organisation id) whose
        organisation the registry never announced."""
        ...

    async def known_organisations(self, organisation_ids: Collection[str]) -> set[str]: ...

    async def lock_pledge_line(self, pledge_id: str, line_id: str) -> domain.PledgeLine | None:
        """The line, held until the write ends: loads of it run one after the other."""
        ...

    async def allocated(self, pledge_id: str, line_id: str) -> Decimal:
        """What every convoy holds of the line: loaded and not given back."""
        ...

    async def allocated_lines(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Decimal]:
        """What every convoy holds of each of these lines (allocated), those held only."""
        ...

    async def pledge_lines(self, keys: Sequence[tuple[str, str]]) -> PledgeLines: ...

    async def recorded_entries(
        self, convoy_id: str, entry_ids: Sequence[str]
    ) -> dict[str, domain.Entry]:
        """The convoy's road entries recorded under these ids, by id."""
        ...

    async def seal_drivers(
        self, drivers: Sequence[Mapping[str, Any]], *, recorder: str, now: datetime
    ) -> tuple[dict[str, Any], ...]: ...

    async def seal_parties(
        self, details: Mapping[str, Any], *, recorder: str, now: datetime
    ) -> dict[str, Any]: ...

    async def seal_receiver(
        self, receiver: Mapping[str, Any], *, recorder: str, now: datetime
    ) -> dict[str, Any]: ...

    async def as_recorded(
        self, details: Mapping[str, Any], recorded: Mapping[str, Any], *, sees_people: bool
    ) -> dict[str, Any]:
        """sealing.as_recorded: a re-sent entry's persons as the entry recorded them."""
        ...


def ports_of(uow: UnitOfWork) -> Ports:
    given: Ports | None = getattr(uow, "ports", None)
    if given is not None:
        return given
    conn: asyncpg.Connection | None = getattr(uow, "conn", None)  # PostgresUnitOfWork's
    if conn is None:
        raise LookupError("a unit of work without a connection needs its own `ports`")
    return PostgresPorts(conn)


async def recorded_entries(
    conn: asyncpg.Connection, convoy_id: str, entry_ids: Sequence[str]
) -> dict[str, domain.Entry]:
    """The convoy's road entries recorded under these ids, by id, as the log holds them (the
    timeline finds them: the state keeps no list of entries)."""
    # planned afresh each time (a statement of its own, not the connection's cached one): a
    # plan cached while the timeline was small would go on scanning it whole as it grows
    lookup = await conn.prepare(
        "SELECT event_id FROM convoy_timeline WHERE convoy_id = $1 AND entry_id = ANY($2::text[])"
    )
    ids = await lookup.fetch(convoy_id, sorted(set(entry_ids)))
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events e WHERE e.event_id = ANY($1::uuid[])"
        " AND e.event_type = ANY($2::text[]) ORDER BY e.stream_version",
        [r["event_id"] for r in ids],
        list(ev.ENTRY_EVENTS.values()),
    )
    found: dict[str, domain.Entry] = {}
    for row in rows:
        entry = domain.entry_of(CONVOYS.codec.decode(from_row(row)))
        found.setdefault(entry.entry_id, entry)
    return found


class PostgresPorts:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def require_organisations(self, organisations: Mapping[str, str]) -> None:
        await directory.require(self.conn, organisations)

    async def known_organisations(self, organisation_ids: Collection[str]) -> set[str]:
        return await directory.known(self.conn, organisation_ids)

    async def lock_pledge_line(self, pledge_id: str, line_id: str) -> domain.PledgeLine | None:
        return await ledger.lock(self.conn, pledge_id, line_id)

    async def allocated(self, pledge_id: str, line_id: str) -> Decimal:
        return await ledger.allocated(self.conn, pledge_id, line_id)

    async def allocated_lines(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Decimal]:
        return await ledger.allocations(self.conn, keys)

    async def pledge_lines(self, keys: Sequence[tuple[str, str]]) -> PledgeLines:
        return await ledger.lines(self.conn, keys)

    async def recorded_entries(
        self, convoy_id: str, entry_ids: Sequence[str]
    ) -> dict[str, domain.Entry]:
        return await recorded_entries(self.conn, convoy_id, entry_ids)

    async def seal_drivers(
        self, drivers: Sequence[Mapping[str, Any]], *, recorder: str, now: datetime
    ) -> tuple[dict[str, Any], ...]:
        return await sealing.seal_drivers(self.conn, drivers, recorder=recorder, now=now)

    async def seal_parties(
        self, details: Mapping[str, Any], *, recorder: str, now: datetime
    ) -> dict[str, Any]:
        return await sealing.seal_parties(self.conn, details, recorder=recorder, now=now)

    async def seal_receiver(
        self, receiver: Mapping[str, Any], *, recorder: str, now: datetime
    ) -> dict[str, Any]:
        return await sealing.seal_receiver(self.conn, receiver, recorder=recorder, now=now)

    async def as_recorded(
        self, details: Mapping[str, Any], recorded: Mapping[str, Any], *, sees_people: bool
    ) -> dict[str, Any]:
        return await sealing.as_recorded(self.conn, details, recorded, sees_people=sees_people)


@dataclass
class InMemoryPorts:
    """The ports over plain values, for handler tests: the organisations the registry
    announced, the pledge lines pledges announced, what convoys hold of each line, and road
    entries as the timeline would find them. Persons are "sealed" as a subject id (one per
    organisation and name) and their personal fields in base64 JSON: the shape the log holds,
    nothing encrypted. Road entries already recorded are found in `store`."""

    organisations: set[str] = field(default_factory=set)
    lines: PledgeLines = field(default_factory=dict)
    allocations: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    store: EventStore | None = None  # the unit of work's, where recorded entries are found
    locked: list[tuple[str, str]] = field(default_factory=list)
    subjects: dict[str, str] = field(default_factory=dict)  # subject id -> name sealed

    async def require_organisations(self, organisations: Mapping[str, str]) -> None:
        directory.check_known(organisations, self.organisations)

    async def known_organisations(self, organisation_ids: Collection[str]) -> set[str]:
        return set(organisation_ids) & self.organisations

    async def lock_pledge_line(self, pledge_id: str, line_id: str) -> domain.PledgeLine | None:
        self.locked.append((pledge_id, line_id))
        return self.lines.get((pledge_id, line_id))

    async def allocated(self, pledge_id: str, line_id: str) -> Decimal:
        return self.allocations.get((pledge_id, line_id), Decimal(0))

    async def allocated_lines(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Decimal]:
        return {k: self.allocations[k] for k in keys if k in self.allocations}

    async def pledge_lines(self, keys: Sequence[tuple[str, str]]) -> PledgeLines:
        return {k: self.lines[k] for k in keys if k in self.lines}

    async def recorded_entries(
        self, convoy_id: str, entry_ids: Sequence[str]
    ) -> dict[str, domain.Entry]:
        wanted = set(entry_ids)
        found: dict[str, domain.Entry] = {}
        stream_id = CONVOYS.stream_id(convoy_id)
        log = [] if self.store is None else await self.store.read_stream(stream_id)
        for event in CONVOYS.codec.decode_all(log):
            if event.event_type in ev.ENTRY_EVENTS.values():
                entry = domain.entry_of(event)
                if entry.entry_id in wanted:
                    found.setdefault(entry.entry_id, entry)
        return found

    def _seal(self, person: Mapping[str, Any], recorder: str, personal: Sequence[str]) -> Any:
        if "subject_id" in person and "sealed" in person:
            return dict(person)
        digest = hashlib.sha256(f"{recorder}/{person['name']}".encode()).hexdigest()[:32]
        hidden = {k: v for k, v in person.items() if k in personal and v is not None}
        out = {k: v for k, v in person.items() if k not in personal}
        sealed = base64.b64encode(json.dumps(hidden, sort_keys=True).encode()).decode()
        subject_id = f"person-{digest}"
        self.subjects[subject_id] = str(person["name"])
        return {**out, "subject_id": subject_id, "personal": sorted(hidden), "sealed": sealed}

    async def seal_drivers(
        self, drivers: Sequence[Mapping[str, Any]], *, recorder: str, now: datetime
    ) -> tuple[dict[str, Any], ...]:
        return tuple(self._seal(d, recorder, sealing.DRIVER) for d in drivers)

    async def seal_parties(
        self, details: Mapping[str, Any], *, recorder: str, now: datetime
    ) -> dict[str, Any]:
        out = dict(details)
        for key in sealing.PARTIES:
            party = out.get(key)
            if party and party.get("person"):
                out[key] = {**party, "person": self._seal(party["person"], recorder, ("name",))}
        return out

    async def seal_receiver(
        self, receiver: Mapping[str, Any], *, recorder: str, now: datetime
    ) -> dict[str, Any]:
        sealed: dict[str, Any] = self._seal(receiver, recorder, sealing.PERSON)
        return sealed

    async def as_recorded(
        self, details: Mapping[str, Any], recorded: Mapping[str, Any], *, sees_people: bool
    ) -> dict[str, Any]:
        """sealing.as_recorded's rule: a person in clear who is the recorded subject (for a
        caller who may not see people: whoever was sent) becomes that subject."""
        out = dict(details)
        for key in sealing.PARTIES:
            party = out.get(key) or {}
            person, was = party.get("person"), (recorded.get(key) or {}).get("person")
            if not person or "sealed" in person or not was or "subject_id" not in was:
                continue
            if sees_people and self.subjects.get(was["subject_id"]) != person.get("name"):
                continue
            clear = {k: v for k, v in person.items() if k not in sealing.PERSON}
            out[key] = {**party, "person": {**clear, "subject_id": was["subject_id"], "sealed": ""}}
        return out
