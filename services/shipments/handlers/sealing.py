"""The people a road entry, a plan or a delivery names, sealed in the write path (shared/privacy.py)
as the organisation whose key typed them records them (services/shipments/auth.py `recorder`),
before the domain decides: PostgresPorts (ports.py) call these. The privacy migration
(services/shipments/privacy.py seal_v1) seals version 1 events with them too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared import privacy

SERVICE = "shipments"
DRIVER = ("name", "phone", "licence_number")  # a driver's personal fields
PERSON = ("name",)  # a person's (custody, receiver): the role stays in clear
PARTIES = ("custody", "from_party", "to_party")  # where road entries name persons


async def seal(
    conn: asyncpg.Connection,
    person: Mapping[str, Any],
    *,
    organisation: str,
    personal: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    """`person` sealed as `organisation` records them (sealed already: as it is)."""
    return await privacy.seal_person(
        conn, person, service=SERVICE, organisation=organisation, personal=personal, now=now
    )


async def seal_drivers(
    conn: asyncpg.Connection, drivers: Sequence[Mapping[str, Any]], *, recorder: str, now: datetime
) -> tuple[dict[str, Any], ...]:
    return tuple(
        [await seal(conn, d, organisation=recorder, personal=DRIVER, now=now) for d in drivers]
    )


async def seal_party(
    conn: asyncpg.Connection, party: Mapping[str, Any] | None, *, recorder: str, now: datetime
) -> Mapping[str, Any] | None:
    """A custody party with its person sealed (a party naming no person: as it is)."""
    if not party or not party.get("person"):
        return party
    person = await seal(conn, party["person"], organisation=recorder, personal=PERSON, now=now)
    return {**party, "person": person}


async def seal_parties(
    conn: asyncpg.Connection, details: Mapping[str, Any], *, recorder: str, now: datetime
) -> dict[str, Any]:
    """A road entry's details with the persons of its parties sealed as `recorder` records
    them."""
    out = dict(details)
    for key in PARTIES:
        if out.get(key):
            out[key] = await seal_party(conn, out[key], recorder=recorder, now=now)
    return out


async def as_recorded(
    conn: asyncpg.Connection,
    details: Mapping[str, Any],
    recorded: Mapping[str, Any],
    *,
    sees_people: bool,
) -> dict[str, Any]:
    """The details of a road entry sent again, each person in clear replaced by the person
    the entry recorded (sealed: its subject and clear fields, what its digest covers) when it
    is the same: that name's subject as the organisation that recorded the entry recorded it
    (whoever sends it again), or an erased subject (nothing is left to tell a name by).
    Another person stays in clear, so the digests differ. Nobody is sealed anew: re-sending
    an entry never records an erased person again.

    A caller who may not see people (`sees_people` false: the origin's logistics key) gets
    no comparison of names at all: the recorded person is taken as the one sent, whatever
    name was sent, so a right and a wrong guess are answered alike (no name oracle)."""
    out = dict(details)
    for key in PARTIES:
        party = out.get(key)
        person = party.get("person") if isinstance(party, Mapping) else None
        was = (recorded.get(key) or {}).get("person")
        if not in_clear(person):
            continue
        assert isinstance(party, Mapping) and isinstance(person, Mapping)
        clear = {k: v for k, v in person.items() if k not in PERSON}
        if not sees_people and in_clear(was):
            # recorded in clear (version 1, not migrated yet): its name, not the one sent
            assert isinstance(was, Mapping)
            out[key] = {**party, "person": {**clear, "name": was["name"]}}
            continue
        if not privacy.is_sealed(was):
            continue
        assert isinstance(was, Mapping)
        subject_id = str(was["subject_id"])
        if sees_people:
            row = await conn.fetchrow(
                "SELECT organisation_id, fingerprint FROM privacy_subjects WHERE subject_id = $1",
                subject_id,
            )
            if row is None:
                continue
            if row["fingerprint"] is not None and bytes(row["fingerprint"]) != (
                await privacy.fingerprint(conn, str(row["organisation_id"]), str(person["name"]))
            ):
                continue
        out[key] = {**party, "person": {**clear, "subject_id": subject_id, "sealed": ""}}
    return out


async def seal_receiver(
    conn: asyncpg.Connection, receiver: Mapping[str, Any], *, recorder: str, now: datetime
) -> dict[str, Any]:
    return await seal(conn, receiver, organisation=recorder, personal=PERSON, now=now)


def in_clear(person: Any) -> bool:
    """A person named in clear (version 1, or as sent), not sealed."""
    return isinstance(person, Mapping) and not privacy.is_sealed(person) and "name" in person
