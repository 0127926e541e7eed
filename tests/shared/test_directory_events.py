"""The directory reads the registry's events through its own models (shared/directory.py
CODEC, shared/consumed.py): fields it does not read are ignored, every version the registry
wrote decodes; coordinates that are no place are Implausible (quarantined by the consumer) and
an event its models refuse otherwise is undecodable (retried, then a dead letter), nothing
stored. Real PostgreSQL, the handlers called as the consumer calls them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from shared import directory
from shared.codec import UndecodableEvent
from shared.errors import ValidationFailed
from shared.incoming import Implausible, Incoming
from shared.testing import fresh_database

pytestmark = pytest.mark.once  # plain SQL, the tables tested on both versions by test_migrations

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
KHARKIV = {"lat": 49.99, "lon": 36.23}
LILLE = {"organisation_id": "lille", "name": "Lille", "kind": "municipality", "country": "FR"}
ROUBAIX = {**LILLE, "organisation_id": "roubaix", "name": "Roubaix"}


@pytest.fixture
async def conn(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    async with fresh_database(pg_server, directory.SCHEMA) as url:
        connection = await asyncpg.connect(url)
        try:
            yield connection
        finally:
            await connection.close()


class Feed:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.position = 0

    async def send(self, kind: str, data: dict[str, Any], *, version: int = 1) -> None:
        self.position += 1
        event_type = f"registry.organisation-{kind}"
        event = Incoming(
            upstream="registry",
            event_id=uuid.uuid4(),
            position=self.position,
            event_type=event_type,
            stream_id=f"organisation-{data.get('organisation_id')}",
            stream_version=self.position,
            occurred_at=NOW,
            data=data,
            correlation_id=None,
            organisation=None,
            schema_version=version,
        )
        await directory.HANDLERS[event_type](self.conn, event)

    async def row(self, organisation_id: str) -> dict[str, Any] | None:
        row = await self.conn.fetchrow(
            "SELECT name, kind, country, aliases, lat, lon, applied_events, source_position"
            " FROM directory WHERE organisation_id = $1",
            organisation_id,
        )
        return None if row is None else dict(row)


async def test_each_organisation_event_and_version_applies_ignoring_fields_it_does_not_read(
    conn: asyncpg.Connection,
) -> None:
    feed = Feed(conn)
    registered = {
        "organisation_id": "kharkiv",
        "name": "Kharkiv",
        "kind": "municipality",
        "country": "UA",
        "region": "Kharkiv Oblast",  # read by nobody here
        "parent_id": None,
        "aliases": ["Charkiw"],
        "coordinates": KHARKIV,
    }
    await feed.send("registered", registered)
    await feed.send(
        "renamed",
        {
            "organisation_id": "kharkiv",
            "name": "Kharkiv City",
            "previous_name": "Kharkiv",
            "reason": "official",
        },
    )
    await feed.send("alias-added", {"organisation_id": "kharkiv", "alias": "Kharkov"})
    await feed.send(
        "corrected",
        {
            "organisation_id": "kharkiv",
            "changes": {"kind": "region", "region": "x"},
            "previous": {"kind": "municipality"},
            "reason": "a region",
        },
    )
    # contacts: version 1 in clear, version 2 sealed; the directory keeps neither
    await feed.send("contacts-changed", {"organisation_id": "kharkiv", "contacts": []}, version=1)
    await feed.send("contacts-changed", {"organisation_id": "kharkiv", "contacts": []}, version=2)
    assert await feed.row("kharkiv") == {
        "name": "Kharkiv City",
        "kind": "region",
        "country": "UA",
        "aliases": ["Charkiw", "Kharkiv", "Kharkov"],
        "lat": KHARKIV["lat"],
        "lon": KHARKIV["lon"],
        "applied_events": 6,
        "source_position": 6,
    }
    # coordinates left out of a correction are kept; given as null, no longer known
    await feed.send("corrected", {"organisation_id": "kharkiv", "changes": {"country": "PL"}})
    assert (await feed.row("kharkiv") or {})["lat"] == KHARKIV["lat"]
    await feed.send("corrected", {"organisation_id": "kharkiv", "changes": {"coordinates": None}})
    row = await feed.row("kharkiv")
    assert row is not None and (row["country"], row["lat"], row["lon"]) == ("PL", None, None)


async def test_coordinates_that_are_no_place_are_implausible_and_change_nothing(
    conn: asyncpg.Connection,
) -> None:
    """Quarantined by the consumer, as before the models: the registry never sends them."""
    feed = Feed(conn)
    await feed.send("registered", LILLE)
    before = await feed.row("lille")
    for coordinates in (
        {"lat": "north", "lon": 3},
        {"lat": 95.0, "lon": 3},
        {"lat": True, "lon": 3},
        {"lat": 50, "lon": 3, "alt": 20},
        [50, 3],
    ):
        with pytest.raises(Implausible, match="not a latitude and longitude in range"):
            await feed.send(
                "corrected", {"organisation_id": "lille", "changes": {"coordinates": coordinates}}
            )
    with pytest.raises(Implausible, match="not a latitude and longitude in range"):
        await feed.send("registered", {**ROUBAIX, "coordinates": {"lat": 50.7}})
    assert await feed.row("lille") == before and await feed.row("roubaix") is None


async def test_an_event_its_models_refuse_is_undecodable_naming_it_and_changes_nothing(
    conn: asyncpg.Connection,
) -> None:
    """A handler failure (the consumer retries it, then parks it as a dead letter)."""
    feed = Feed(conn)
    await feed.send("registered", LILLE)
    before = await feed.row("lille")
    refused: list[tuple[str, dict[str, Any], int, str]] = [
        (
            "renamed",
            {"organisation_id": "lille", "name": "x" * 201, "previous_name": "L"},
            1,
            "name: String should have at most 200 characters",
        ),
        ("alias-added", {"organisation_id": "lille"}, 1, "alias: Field required"),
        ("registered", {**ROUBAIX, "country": "France"}, 1, "country: String should match"),
        # a version newer than the directory's model, read with it: what it reads must validate
        ("registered", {**ROUBAIX, "name": None}, 2, "name: Input should be a valid string"),
    ]
    for kind, data, version, reason in refused:
        with pytest.raises(UndecodableEvent) as caught:
            await feed.send(kind, data, version=version)
        assert reason in caught.value.detail, (kind, caught.value.detail)
        assert f"registry.organisation-{kind} v{version}" in caught.value.detail
    assert await feed.row("lille") == before
    assert await feed.row("roubaix") is None


async def test_a_newer_version_of_a_registry_event_is_read_with_the_directory_s_model(
    conn: asyncpg.Connection,
) -> None:
    """The registry may ship a new version before pledges and shipments are upgraded: what the
    directory reads still validates, so it applies (a tolerant reader), extra fields ignored."""
    feed = Feed(conn)
    await feed.send("registered", {**ROUBAIX, "founded": "1300"}, version=2)
    assert (await feed.row("roubaix")) is not None


def test_the_directory_knows_each_registry_event_it_reads_at_its_current_version() -> None:
    assert {t: directory.CODEC.version(t) for t in directory.CODEC.event_types()} == {
        "registry.organisation-alias-added": 1,
        "registry.organisation-contacts-changed": 2,
        "registry.organisation-corrected": 1,
        "registry.organisation-registered": 1,
        "registry.organisation-renamed": 1,
    }
    assert set(directory.HANDLERS) == set(directory.CODEC.event_types())


async def test_require_checks_every_field_in_one_query_and_names_the_first_unknown(
    conn: asyncpg.Connection,
) -> None:
    feed = Feed(conn)
    await feed.send("registered", LILLE)
    await feed.send("registered", ROUBAIX)
    statements: list[str] = []
    conn.add_query_logger(lambda record: statements.append(record.query))
    await directory.require(conn, {"donor_id": "lille", "recipient_id": "roubaix"})
    await asyncio.sleep(0)  # asyncpg calls its query loggers soon after, not inline
    assert len(statements) == 1
    with pytest.raises(ValidationFailed) as refused:
        await directory.require(conn, {"a": "lille", "b": "nowhere", "c": "elsewhere"})
    assert refused.value.extra["invalid_params"] == [
        {"name": "b", "reason": "unknown organisation"}
    ]
    assert "nowhere" in str(refused.value)
    assert await directory.known(conn, ["lille", "lille", "nowhere"]) == {"lille"}
