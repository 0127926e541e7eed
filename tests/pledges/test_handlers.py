"""The pledges handlers on the in-memory event store, no database: each command through
HANDLERS in an InMemoryUnitOfWork whose ports (handlers/ports.py) are MemoryPorts. What is
appended is read back from the store; a refused command appends nothing; a write that lost
the race for its record's next version is a ConcurrencyConflict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.pledges import commands, domain, handlers
from services.pledges import events as ev
from services.pledges.domain.quantities import Unit
from services.pledges.handlers.ports import MemoryPorts
from shared.commands import Command
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from shared.event_store import ConcurrencyConflict
from shared.events import Metadata, RecordedEvent
from shared.memory_store import InMemoryEventStore
from shared.repository import InMemoryUnitOfWork

pytestmark = pytest.mark.once

NOW = datetime(2023, 2, 20, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=10)


class PledgesUnitOfWork(InMemoryUnitOfWork):
    def __init__(self, store: InMemoryEventStore, ports: MemoryPorts, correlation: str) -> None:
        super().__init__(store, Metadata(actor="test", correlation_id=correlation), NOW)
        self.ports = ports


class World:
    """One store and the registry's copy, shared by every unit of work of a test."""

    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.ports = MemoryPorts(organisations={"kharkiv", "lille", "leeds"})

    async def run(self, command: Command, *, correlation: str = "corr-1") -> Any:
        uow = PledgesUnitOfWork(self.store, self.ports, correlation)
        return await handlers.HANDLERS.handle(command, uow)

    async def stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self.store.read_stream(stream_id)


def need(need_id: str = "n1", **fields: Any) -> commands.PostNeed:
    acting_for = fields.pop("acting_for", "kharkiv")
    return commands.PostNeed(
        need=domain.PostNeed(
            need_id=need_id,
            recipient_id=fields.pop("recipient_id", "kharkiv"),
            kind=domain.NeedKind.ITEM,
            category=domain.Category.GENERATORS,
            description="Generators for essential infrastructure",
            occurred_at=EARLIER,
            quantity=Decimal(100),
            unit=Unit.PIECES,
            contact={"name": "Olha", "role": "head of housing"},
            **fields,
        ),
        acting_for=acting_for,
    )


def pledge(
    pledge_id: str = "p1", *, need_id: str | None = "n1", **fields: Any
) -> commands.MakePledge:
    line = domain.LineSpec(
        line_id="generators",
        kind=domain.LineKind.IN_KIND,
        item="Medium-sized generator",
        category="generators",
        need_id=need_id,
        quantity=Decimal(40),
        unit=Unit.PIECES,
    )
    return commands.MakePledge(
        pledge=domain.MakePledge(
            pledge_id=pledge_id,
            donor_id="lille",
            recipient_id="kharkiv",
            lines=(line,),
            occurred_at=None,
            **fields,
        ),
        acting_for="lille",
    )


async def test_posting_a_need_appends_it_sealed_by_the_port_and_answers_open() -> None:
    world = World()
    answer = await world.run(need())
    assert answer == {"need_id": "n1", "status": "open", "version": 1, "correlation_id": "corr-1"}
    [posted] = await world.stream("need-n1")
    assert (posted.event_type, posted.schema_version) == (ev.NEED_POSTED, 2)
    contact = posted.data["contact"]
    assert contact["subject_id"].startswith("pledges-") and "name" not in contact
    assert (contact["personal"], contact["role"]) == (["name"], "head of housing")
    assert posted.occurred_at == EARLIER
    assert posted.metadata.correlation_id == "corr-1"


async def test_a_need_for_another_or_an_unknown_organisation_is_refused_and_not_stored() -> None:
    world = World()
    with pytest.raises(Forbidden):
        await world.run(need(acting_for="lille"))
    with pytest.raises(ValidationFailed, match="not in the registry"):
        await world.run(need(recipient_id="nowhere", acting_for=None))
    assert await world.stream("need-n1") == []
    await world.run(need())
    with pytest.raises(Conflict, match="already exists"):
        await world.run(need())
    assert len(await world.stream("need-n1")) == 1


async def test_a_committed_pledge_to_a_need_shares_its_lock_and_its_correlation() -> None:
    world = World()
    await world.run(need(), correlation="need-corr")
    answer = await world.run(pledge(commit=True), correlation="request-corr")
    assert answer == {
        "pledge_id": "p1",
        "status": "committed",
        "version": 3,
        "correlation_id": "need-corr",
    }
    assert world.ports.locks == [("n1", True)]
    events = await world.stream("pledge-p1")
    assert [e.event_type for e in events] == [
        ev.PLEDGE_MADE,
        ev.PLEDGE_COMMITTED,
        ev.PLEDGE_LINE_UPDATED,
    ]
    assert {e.metadata.correlation_id for e in events} == {"need-corr"}
    assert events[2].data["remaining"] == "40"


async def test_a_pledge_to_a_closed_need_or_under_an_unknown_partnership_is_refused() -> None:
    world = World()
    await world.run(need())
    closed = await world.run(
        commands.EndNeed(
            need_id="n1",
            acting_for="kharkiv",
            if_match=None,
            to=domain.NeedState.CLOSED,
            reason="covered",
            occurred_at=None,
        )
    )
    assert closed["version"] == 2
    assert world.ports.locks == [("n1", False)]  # a change takes the need's lock alone
    with pytest.raises(Conflict, match="no longer answer it"):
        await world.run(pledge())
    with pytest.raises(ValidationFailed, match="unknown"):
        await world.run(pledge("p2", need_id=None, partnership_id="lille-kharkiv"))
    assert await world.stream("pledge-p1") == [] and await world.stream("pledge-p2") == []


async def test_changes_answer_the_status_and_version_they_leave() -> None:
    world = World()
    await world.run(need())
    await world.run(pledge())
    committed = await world.run(
        commands.CommitPledge(pledge_id="p1", acting_for="lille", if_match=1, occurred_at=None)
    )
    assert (committed["status"], committed["version"]) == ("committed", 3)
    amended = await world.run(
        commands.AmendLine(
            pledge_id="p1",
            acting_for="lille",
            if_match=None,
            line_id="generators",
            size=Decimal(30),
            reason="fewer in stock",
            occurred_at=None,
        )
    )
    assert (amended["status"], amended["version"]) == ("committed", 5)
    withdrawn = await world.run(
        commands.WithdrawPledge(
            pledge_id="p1",
            acting_for="lille",
            if_match=5,
            reason="convoy cancelled",
            occurred_at=None,
        )
    )
    assert (withdrawn["status"], withdrawn["version"]) == ("withdrawn", 7)


async def test_rule_violations_are_refused_and_append_nothing() -> None:
    world = World()
    await world.run(need())
    await world.run(pledge())
    before = await world.stream("pledge-p1")
    with pytest.raises(Forbidden):  # only the donor commits
        await world.run(
            commands.CommitPledge(
                pledge_id="p1", acting_for="kharkiv", if_match=None, occurred_at=None
            )
        )
    with pytest.raises(PreconditionFailed):  # the caller read version 7, it is 1
        await world.run(
            commands.CommitPledge(pledge_id="p1", acting_for="lille", if_match=7, occurred_at=None)
        )
    with pytest.raises(ValidationFailed, match="is in kind"):
        receipt = domain.ReceiveMoney(
            line_id="generators", amount=1, currency="EUR", received_on=NOW.date(), reference="r"
        )
        await world.run(
            commands.ReceiveMoney(
                pledge_id="p1", acting_for="kharkiv", if_match=None, receipt=receipt
            )
        )
    with pytest.raises(NotFound):
        await world.run(
            commands.CommitPledge(
                pledge_id="p9", acting_for="lille", if_match=None, occurred_at=None
            )
        )
    assert await world.stream("pledge-p1") == before


async def test_a_delivery_counts_once_however_often_it_is_reported() -> None:
    world = World()
    await world.run(need())
    await world.run(pledge(commit=True))
    line = domain.DeliveredLine(
        convoy_id="convoy-1",
        manifest_line_id="m1",
        delivery_event_id="d1",
        line_id="generators",
        unit="pieces",
        loaded=Decimal(40),
        received=Decimal(40),
        damaged=Decimal(0),
        short=Decimal(0),
        lost=Decimal(0),
    )
    delivery = commands.RecordDelivery(
        delivered={"p1": [line]}, correlation_ids={}, occurred_at=NOW
    )
    assert await world.run(delivery) == 2  # the delivery, and the line's update to shipments
    assert await world.run(delivery) == 0
    state = await handlers.PLEDGES.load(PledgesUnitOfWork(world.store, world.ports, "c"), "p1")
    assert state.status is domain.PledgeStatus.FULFILLED
    with pytest.raises(domain.UnusableDelivery):
        await world.run(
            commands.RecordDelivery(delivered={"p9": [line]}, correlation_ids={}, occurred_at=NOW)
        )


class RacingStore(InMemoryEventStore):
    """Lets another writer commit right after a writer read the stream it names."""

    def __init__(self) -> None:
        super().__init__()
        self.race: tuple[str, Callable[[], Awaitable[Any]]] | None = None

    async def read_stream(self, stream_id: str, **kwargs: Any) -> list[RecordedEvent]:
        events = await super().read_stream(stream_id, **kwargs)
        if self.race is not None and self.race[0] == stream_id:
            _, other = self.race
            self.race = None
            await other()
        return events


async def test_a_change_that_lost_the_race_for_the_next_version_is_a_concurrency_conflict() -> None:
    world = World()
    world.store = store = RacingStore()
    await world.run(need())
    await world.run(pledge())
    store.race = (
        "pledge-p1",
        lambda: world.run(
            commands.CommitPledge(
                pledge_id="p1", acting_for="lille", if_match=None, occurred_at=None
            )
        ),
    )
    with pytest.raises(ConcurrencyConflict):
        await world.run(
            commands.WithdrawPledge(
                pledge_id="p1",
                acting_for="lille",
                if_match=None,
                reason="changed our mind",
                occurred_at=None,
            )
        )
    events = await world.stream("pledge-p1")
    assert [e.event_type for e in events] == [
        ev.PLEDGE_MADE,
        ev.PLEDGE_COMMITTED,
        ev.PLEDGE_LINE_UPDATED,
    ]  # the other writer's commitment, nothing of the withdrawal


def test_every_command_has_exactly_one_handler() -> None:
    named = {
        c
        for c in vars(commands).values()
        if isinstance(c, type) and c.__module__ == commands.__name__
    }
    concrete = {c for c in named if not c.__name__.endswith("Change")}
    assert set(handlers.HANDLERS.commands()) == concrete
