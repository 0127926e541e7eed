"""The shipments handlers on the in-memory event store (issue 18): no database. Each command
runs through its registered handler (handlers.HANDLERS) in an InMemoryUnitOfWork whose ports
(handlers/ports.py InMemoryPorts) stand for the directory, the pledge lines and sealing:
what a handler decides and appends, what it refuses (storing nothing), and a convoy that moved
on under a write (ConcurrencyConflict; over HTTP the write runs again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.shipments import commands, domain, handlers
from services.shipments import events as ev
from services.shipments.handlers import CONVOYS, HANDLERS, InMemoryPorts
from shared.auth import Principal, Role
from shared.commands import Command
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from shared.event_store import ConcurrencyConflict
from shared.events import Metadata
from shared.memory_store import InMemoryEventStore
from shared.repository import InMemoryUnitOfWork

pytestmark = pytest.mark.once

NOW = datetime(2022, 6, 9, 12, 0, tzinfo=UTC)
ON_C1: dict[str, Any] = {"convoy_id": "c1"}
T0 = datetime(2022, 6, 1, 8, 0, tzinfo=UTC)
LILLE = Principal("k-lille", "lille", frozenset({Role.LOGISTICS}))
CARRIER = Principal("k-tn", "transports-nord", frozenset({Role.LOGISTICS}))
KHARKIV = Principal("k-kharkiv", "kharkiv", frozenset({Role.MEMBER}))
STRANGER = Principal("k-leeds", "leeds", frozenset({Role.LOGISTICS}))
LINE = domain.PledgeLine(
    pledge_id="p1",
    line_id="l1",
    donor_id="lille",
    recipient_id="kharkiv",
    item="Medium generator 5 kVA",
    category="generators",
    unit="pieces",
    quantity=Decimal(50),
    weight_kg=Decimal(4000),
    status="committed",
    correlation_id="corr-p1",
    committed_at=T0 - timedelta(days=1),
)


class UnitOfWork(InMemoryUnitOfWork):
    """The in-memory unit of work with the ports its handlers ask (handlers.ports_of)."""

    ports: InMemoryPorts


class World:
    """One in-memory log and the ports around it; each command runs in its own unit of work."""

    def __init__(self, ports: InMemoryPorts | None = None) -> None:
        self.store = InMemoryEventStore()
        self.ports = ports or InMemoryPorts()
        self.ports.store = self.store
        self.ports.organisations |= {"lille", "kharkiv", "transports-nord", "ukrposhta"}
        self.ports.lines[("p1", "l1")] = LINE
        self.units: list[UnitOfWork] = []

    async def run(self, command: Command) -> Any:
        uow = UnitOfWork(self.store, Metadata(actor="test"), NOW)
        uow.ports = self.ports
        self.units.append(uow)
        return await HANDLERS.handle(command, uow)

    async def log(self, convoy_id: str = "c1") -> list[Any]:
        return await CONVOYS.history(UnitOfWork(self.store), convoy_id)

    async def convoy(self, convoy_id: str = "c1") -> domain.Convoy:
        return await CONVOYS.load(UnitOfWork(self.store), convoy_id)


def plan(convoy_id: str = "c1", **changes: Any) -> domain.PlanConvoy:
    fields: dict[str, Any] = {
        "convoy_id": convoy_id,
        "reference": "Lille - Kharkiv generators",
        "origin_id": "lille",
        "destination_id": "kharkiv",
        "carrier_id": "transports-nord",
        "planned_departure": T0 + timedelta(days=5),
        "vehicles": (domain.Vehicle("AB-123-CD", "truck", Decimal(12000)),),
        "drivers": ({"name": "Jean Dupont", "phone": "+33 6 00 00 00 00", "vehicle": "AB-123-CD"},),
        "occurred_at": T0,
    }
    return domain.PlanConvoy(**{**fields, **changes})


def load(quantity: str = "10", manifest_line_id: str = "m1") -> domain.LoadLine:
    return domain.LoadLine(
        manifest_line_id=manifest_line_id,
        pledge_id="p1",
        line_id="l1",
        quantity=Decimal(quantity),
        vehicle="AB-123-CD",
        occurred_at=T0 + timedelta(hours=1),
    )


def road(*entries: tuple[str, str, dict[str, Any]]) -> commands.RecordEntries:
    """Entries (kind, id, details), an hour apart from the day after loading."""
    start = T0 + timedelta(days=1)
    return commands.RecordEntries(
        convoy_id="c1",
        entries=tuple(
            domain.FieldEntry(entry_id, kind, start + timedelta(hours=i), details)
            for i, (kind, entry_id, details) in enumerate(entries)
        ),
        caller=CARRIER,
    )


async def loaded_convoy(world: World) -> None:
    await world.run(commands.PlanConvoy(plan=plan(), caller=LILLE))
    await world.run(commands.LoadLine(convoy_id="c1", load=load(), caller=LILLE))


async def test_planning_records_the_plan_with_its_drivers_sealed() -> None:
    world = World()
    answer = await world.run(commands.PlanConvoy(plan=plan(), caller=LILLE))
    assert answer == {"convoy_id": "c1", "status": "planned", "version": 1}
    [planned] = await world.log()
    assert isinstance(planned.payload, ev.ConvoyPlanned)
    [driver] = planned.payload.drivers
    assert driver.vehicle == "AB-123-CD" and driver.personal == ["name", "phone"]
    assert "Jean" not in str(planned.recorded.data)  # only sealed persons in the log
    # the snapshot kept by the write is the state the log folds to
    assert await world.convoy() == CONVOYS.fold(domain.Convoy("c1"), world.units[0].projected)


async def test_planning_refuses_a_stranger_an_unknown_organisation_and_a_taken_id() -> None:
    world = World()
    with pytest.raises(Forbidden):
        await world.run(commands.PlanConvoy(plan=plan(), caller=STRANGER))
    with pytest.raises(ValidationFailed) as unknown:
        await world.run(commands.PlanConvoy(plan=plan(carrier_id="nobody"), caller=LILLE))
    assert unknown.value.extra["invalid_params"][0]["name"] == "carrier_id"
    assert await world.log() == []
    await world.run(commands.PlanConvoy(plan=plan(), caller=LILLE))
    with pytest.raises(Conflict):  # the id is taken
        await world.run(commands.PlanConvoy(plan=plan(), caller=CARRIER))
    assert len(await world.log()) == 1


async def test_loading_takes_the_line_locked_and_answers_what_remains() -> None:
    world = World()
    await world.run(commands.PlanConvoy(plan=plan(), caller=LILLE))
    answer = await world.run(commands.LoadLine(convoy_id="c1", load=load("10"), caller=CARRIER))
    assert answer["version"] == 2 and answer["status"] == "loading"
    assert answer["quantity"] == "10" and answer["weight_kg"] == "800"
    assert answer["remaining_on_pledge_line"] == "40"
    assert world.ports.locked == [("p1", "l1")]
    loaded = (await world.log())[-1]
    assert loaded.metadata.correlation_id == "corr-p1"  # the pledge's flow continues
    world.ports.allocations[("p1", "l1")] = Decimal(45)  # other convoys took 45 meanwhile
    with pytest.raises(domain.ExceedsRemaining):
        await world.run(commands.LoadLine(convoy_id="c1", load=load("10", "m2"), caller=CARRIER))
    with pytest.raises(Forbidden):
        await world.run(commands.LoadLine(convoy_id="c1", load=load("1", "m3"), caller=KHARKIV))
    with pytest.raises(NotFound):
        await world.run(commands.LoadLine(convoy_id="c9", load=load("1", "m3"), caller=CARRIER))
    assert len(await world.log()) == 2


async def test_a_stale_if_match_is_refused_and_stores_nothing() -> None:
    world = World()
    await loaded_convoy(world)
    unload = domain.UnloadLine("m1", T0 + timedelta(hours=2), reason="wrong truck")
    with pytest.raises(PreconditionFailed):
        await world.run(
            commands.UnloadLine(convoy_id="c1", unload=unload, caller=LILLE, if_match=1)
        )
    answer = await world.run(
        commands.UnloadLine(convoy_id="c1", unload=unload, caller=LILLE, if_match=2)
    )
    assert answer["given_back"]["quantity"] == "10" and answer["status"] == "planned"
    assert len(await world.log()) == 3


async def test_cancelling_releases_everything_loaded() -> None:
    world = World()
    await loaded_convoy(world)
    cancel = domain.CancelConvoy("the border closed", T0 + timedelta(hours=3))
    answer = await world.run(commands.CancelConvoy(convoy_id="c1", cancel=cancel, caller=LILLE))
    assert answer["status"] == "cancelled"
    assert answer["released"] == [
        {"manifest_line_id": "m1", "pledge_id": "p1", "line_id": "l1", "quantity": "10"}
    ]


async def test_road_entries_are_recorded_once_and_a_re_sent_one_is_answered_as_before() -> None:
    world = World()
    await loaded_convoy(world)
    custody = {"organisation_id": "transports-nord", "person": {"name": "Jean Dupont"}}
    first = await world.run(
        road(("dispatch", "d", {"custody": custody}), ("checkpoint", "cp", {"place": "Lviv"}))
    )
    assert first["recorded"] == 2 and first["already_recorded"] == 0
    assert first["status"] == "in_transit" and first["version"] == 4
    again = await world.run(
        road(("dispatch", "d", {"custody": custody}), ("checkpoint", "cp", {"place": "Lviv"}))
    )
    assert again["recorded"] == 0 and again["already_recorded"] == 2
    assert again["entries"] == first["entries"] and again["version"] == 4
    with pytest.raises(domain.EntryIdReused):
        await world.run(road(("checkpoint", "cp", {"place": "Rivne"})))
    with pytest.raises(Forbidden):
        await world.run(
            commands.RecordEntries(
                convoy_id="c1", entries=road(("arrival", "a", {})).entries, caller=STRANGER
            )
        )
    assert len(await world.log()) == 4


async def test_an_entry_naming_an_unknown_organisation_is_refused() -> None:
    world = World()
    await loaded_convoy(world)
    with pytest.raises(ValidationFailed) as refused:
        await world.run(road(("dispatch", "d", {"custody": {"organisation_id": "nobody"}})))
    assert refused.value.extra["invalid_params"][0]["name"] == "entries[d].custody.organisation_id"
    assert len(await world.log()) == 2


async def test_delivery_and_closing() -> None:
    world = World()
    await loaded_convoy(world)
    await world.run(road(("dispatch", "d", {}), ("arrival", "a", {})))
    delivery = domain.ConfirmDelivery(
        confirmed_by={"name": "Olha Kravchenko", "role": "head of the warehouse"},
        document_name=None,
        document_sha256=None,
        lines=(domain.DeliveredQuantities("m1", Decimal(8), Decimal(1), Decimal(1)),),
        occurred_at=T0 + timedelta(days=2),
    )
    with pytest.raises(Forbidden):  # only the recipient confirms
        await world.run(commands.ConfirmDelivery(convoy_id="c1", delivery=delivery, caller=CARRIER))
    answer = await world.run(
        commands.ConfirmDelivery(convoy_id="c1", delivery=delivery, caller=KHARKIV)
    )
    assert answer["status"] == "delivered" and answer["outcome"] == "partial"
    assert [x["manifest_line_id"] for x in answer["discrepancies"]] == ["m1"]
    delivered = (await world.log())[-1]
    assert delivered.payload.confirmed_by.role == "head of the warehouse"
    assert delivered.metadata.correlation_id == "corr-p1"
    close = domain.CloseConvoy(occurred_at=T0 + timedelta(days=3))
    closed = await world.run(
        commands.CloseConvoy(convoy_id="c1", close=close, caller=KHARKIV, if_match=5)
    )
    assert closed == {"convoy_id": "c1", "status": "closed", "version": 6}


class Racing(InMemoryPorts):
    """Ports under which another writer unloads the convoy's line while a load decides."""

    world: World
    armed = False

    async def lock_pledge_line(self, pledge_id: str, line_id: str) -> domain.PledgeLine | None:
        if self.armed:
            self.armed = False
            unload = domain.UnloadLine("m1", T0 + timedelta(hours=2))
            await self.world.run(commands.UnloadLine(convoy_id="c1", unload=unload, caller=CARRIER))
        return await super().lock_pledge_line(pledge_id, line_id)


async def test_a_convoy_moved_on_under_a_write_is_a_concurrency_conflict() -> None:
    ports = Racing()
    world = World(ports)
    ports.world = world
    await world.run(commands.PlanConvoy(plan=plan(), caller=LILLE))
    await world.run(commands.LoadLine(convoy_id="c1", load=load(), caller=LILLE))
    ports.armed = True
    with pytest.raises(ConcurrencyConflict):
        await world.run(commands.LoadLine(convoy_id="c1", load=load("5", "m2"), caller=LILLE))
    log = await world.log()
    assert [e.event_type for e in log] == [
        ev.CONVOY_PLANNED,
        ev.MANIFEST_LINE_LOADED,
        ev.MANIFEST_LINE_UNLOADED,  # the other writer's only
    ]


def test_every_command_has_its_one_handler() -> None:
    assert set(HANDLERS.commands()) == {
        commands.PlanConvoy,
        commands.LoadLine,
        commands.UnloadLine,
        commands.CancelConvoy,
        commands.RecordEntries,
        commands.ConfirmDelivery,
        commands.CloseConvoy,
    }
    # a unit of work without ports of its own is PostgreSQL's, on its connection
    with pytest.raises(LookupError):
        handlers.ports_of(UnitOfWork())
