"""The pledges projections leave the same rows whether events come one at a time (a request's
write) or in batches of any size (a group commit, a page of a rebuild): generated sequences of
pledges made, committed, withdrawn and amended, money and goods received, donors' figures,
line updates, needs revised, closed and cancelled, a need posted after pledges to it and events
delivered again, applied one by one
to one database and in batches of random sizes to another, leave every row of the read models
identical, to the last digit of every numeric; delivered all over again they change nothing;
and each need's kept figures are those summed again over its lines."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from services.pledges import events as ev
from services.pledges import projections
from shared import db as dbmod
from shared import directory
from shared import projections as proj
from shared.events import Metadata, RecordedEvent
from shared.testing import fresh_database
from tests.pledges.test_coverage_incremental import kept, recomputed

APPLIED = (projections.NEEDS, projections.PLEDGES)
TABLES = [t for p in APPLIED for t in p.tables]
# need id -> (kind, unit or currency, target): "late" is posted in the middle of a sequence,
# "ghost" never (lines may answer it all the same)
NEEDS = {
    "flour": ("item", "kg", "900"),
    "grain": ("item", "tonnes", "2.5"),
    "fuel": ("money", "EUR", "500000"),
    "late": ("item", "kg", "40"),
}
UNITS_FOR = {"flour": ["kg", "tonnes"], "grain": ["kg", "tonnes"], "late": ["kg", "tonnes"]}
START = datetime(2024, 1, 1, tzinfo=UTC)

# a quantity as a request writes it, with 0 to 3 places ("12", "1.50", "0.005")
quantity = st.builds(
    lambda n, places: str(Decimal(n).scaleb(-places)),
    st.integers(1, 400_000),
    st.integers(0, 3),
)


@st.composite
def line_spec(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        need = draw(st.sampled_from([None, "fuel", "ghost"]))
        return {"kind": "money", "need_id": need, "amount": draw(st.integers(1, 300_000))}
    need = draw(st.sampled_from([None, "flour", "grain", "late", "ghost"]))
    units = UNITS_FOR.get(need or "", ["kg", "tonnes", "pieces"])
    return {
        "kind": "in_kind",
        "need_id": need,
        "quantity": draw(quantity),
        "unit": draw(st.sampled_from(units)),
        "weight_kg": draw(st.none() | quantity),
    }


pledge_index = st.integers(0, 2)
line_index = st.integers(0, 2)
make = st.tuples(st.just("make"), pledge_index, st.lists(line_spec(), min_size=1, max_size=3))
commit = st.tuples(st.just("commit"), pledge_index)
amend = st.tuples(st.just("amend"), pledge_index, line_index, quantity, st.integers(1, 300_000))
receive = st.tuples(st.just("receive"), pledge_index, line_index, st.integers(1, 100_000))
deliver = st.tuples(st.just("deliver"), pledge_index, line_index, quantity, quantity)
op = st.one_of(  # the frequent ones more often
    make,
    make,
    commit,
    commit,
    st.tuples(st.just("withdraw"), pledge_index),
    amend,
    receive,
    receive,
    receive,
    deliver,
    deliver,
    deliver,
    st.tuples(st.just("figure"), pledge_index, line_index, quantity),
    st.tuples(st.just("updated"), pledge_index, line_index),
    st.tuples(st.just("again"), st.integers(0, 10_000)),  # an event delivered again
    st.tuples(st.just("post-late")),
    st.tuples(st.just("revise"), st.sampled_from(sorted(NEEDS)), st.integers(1, 900_000)),
    st.tuples(st.just("end"), st.sampled_from(sorted(NEEDS)), st.booleans()),
)
# each step also moves the clock: a few seconds back now and then (changed_at keeps the latest)
clock = st.integers(-5, 90)
# a few pledges made first, then anything
sequences = st.builds(
    lambda first, then: first + then,
    st.lists(st.tuples(make, clock), min_size=2, max_size=4),
    st.lists(st.tuples(op, clock), min_size=6, max_size=40),
)
batch_sizes = st.lists(st.integers(1, 15), min_size=1, max_size=8)


@dataclass
class History:
    """Events built from the generated steps: each pledge's stream versions counted, its
    lines as it was first made."""

    events: list[RecordedEvent] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    late_posted: bool = False
    at: datetime = START

    def add(self, stream: str, model: BaseModel) -> RecordedEvent:
        new = ev.new(model)
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        event = RecordedEvent(
            event_id=uuid.uuid4(),
            stream_type=stream.split("-", 1)[0],
            stream_id=stream,
            stream_version=version,
            event_type=new.event_type,
            schema_version=new.schema_version,
            occurred_at=self.at,
            recorded_at=self.at,
            data=new.data,
            metadata=Metadata(actor="test", correlation_id=f"c-{len(self.events)}"),
        )
        self.events.append(event)
        return event

    def post(self, need_id: str) -> RecordedEvent:
        kind, unit, target = NEEDS[need_id]
        money = kind == "money"
        return self.add(
            f"need-{need_id}",
            ev.NeedPosted(
                need_id=need_id,
                recipient_id="kharkiv",
                kind=kind,
                category="food",
                description=f"{need_id} for the winter",
                quantity=None if money else target,
                unit=None if money else unit,
                amount=int(target) if money else None,
                currency=unit if money else None,
                priority="normal",
                serves=[],
                deadline=None,
            ),
        )

    def line(self, pledge_id: str, index: int, kind: str | None) -> tuple[str, dict[str, Any]]:
        """A line of the pledge as first made (of `kind` if it has one)."""
        lines = list(enumerate(self.lines.get(pledge_id) or [{"kind": "in_kind", "unit": "kg"}]))
        lines = [(i, line) for i, line in lines if line["kind"] == kind] or lines
        i, line = lines[index % len(lines)]
        return f"l{i}", line

    def step(self, step: tuple[Any, ...]) -> RecordedEvent | None:
        name, *args = step
        if name == "again":
            return self.events[args[0] % len(self.events)] if self.events else None
        if name == "post-late":
            if self.late_posted:
                return None
            self.late_posted = True
            return self.post("late")
        if name == "revise":
            need_id, size = args
            field = "amount" if NEEDS[need_id][0] == "money" else "quantity"
            value = size if field == "amount" else str(Decimal(size).scaleb(-2))
            revised = ev.NeedRevised(
                need_id=need_id,
                changes={field: value, "priority": "high"},
                previous={field: NEEDS[need_id][2], "priority": "normal"},
                reason="the winter",
            )
            return self.add(f"need-{need_id}", revised)
        if name == "end":
            need_id, closed = args
            end = ev.NeedClosed if closed else ev.NeedCancelled
            return self.add(f"need-{need_id}", end(need_id=need_id, reason="enough"))
        pledge_id = f"p{args[0]}"
        stream = f"pledge-{pledge_id}"
        if name == "make":
            self.lines.setdefault(pledge_id, args[1])
            return self.add(stream, made(pledge_id, args[1]))
        if name == "commit":
            return self.add(stream, ev.PledgeCommitted(pledge_id=pledge_id, **PARTIES))
        if name == "withdraw":
            return self.add(
                stream,
                ev.PledgeWithdrawn(
                    pledge_id=pledge_id, reason="plans changed", previous_status="pledged"
                ),
            )
        wanted = {"receive": "money", "deliver": "in_kind"}.get(name)
        line_id, line = self.line(pledge_id, args[1], wanted)
        on = {"pledge_id": pledge_id, "line_id": line_id}
        money = line["kind"] == "money"
        unit = None if money else line["unit"]
        match name:
            case "amend":
                return self.add(stream, amended(on, line, size=args[2], amount=args[3]))
            case "receive":
                receipt = ev.MoneyReceived(
                    **on,
                    amount=args[2],
                    currency="EUR",
                    received_on=date(2024, 2, 1),
                    reference=f"wire-{len(self.events)}",
                )
                return self.add(stream, receipt)
            case "deliver":
                received, damaged = Decimal(args[2]), Decimal(args[3])
                delivery = ev.DeliveryRecorded(
                    **on,
                    convoy_id=f"convoy-{len(self.events)}",
                    manifest_line_id="m1",
                    delivery_event_id=str(uuid.uuid4()),
                    recipient_id="kharkiv",
                    unit=unit or "kg",
                    loaded=str(received + damaged),
                    received=args[2],
                    damaged=args[3],
                    short="0",
                    lost="0",
                    confirmed_by=None,
                    document=None,
                )
                return self.add(stream, delivery)
            case "figure":
                figure = ev.DonorFigureReported(
                    **on,
                    kind=line["kind"],
                    quantity=None if money else args[2],
                    unit=unit,
                    amount=int(Decimal(args[2])) if money else None,
                    currency="EUR" if money else None,
                    reported_on=date(2024, 2, 2),
                    note=None,
                )
                return self.add(stream, figure)
        updated = ev.PledgeLineUpdated(
            **on,
            **PARTIES,
            partnership_id=None,
            item="Flour",
            category="food",
            unit=unit or "kg",
            quantity="10",
            weight_kg=None,
            delivered="0",
            remaining="10",
            status="committed",
        )
        return self.add(stream, updated)


PARTIES = {"donor_id": "lille", "recipient_id": "kharkiv"}


def made(pledge_id: str, lines: list[dict[str, Any]]) -> ev.PledgeMade:
    return ev.PledgeMade(
        pledge_id=pledge_id,
        **PARTIES,
        partnership_id=None,
        description="for the winter",
        lines=[
            ev.Line(
                line_id=f"l{i}",
                kind=line["kind"],
                need_id=line["need_id"],
                item="Fuel" if line["kind"] == "money" else "Flour",
                category="food",
                quantity=line.get("quantity"),
                unit=line.get("unit"),
                weight_kg=line.get("weight_kg"),
                value_amount=None,
                value_currency=None,
                amount=line.get("amount"),
                currency="EUR" if line["kind"] == "money" else None,
            )
            for i, line in enumerate(lines)
        ],
    )


def amended(on: dict[str, str], line: dict[str, Any], *, size: str, amount: int) -> BaseModel:
    money = line["kind"] == "money"
    return ev.PledgeLineAmended(
        **on,
        kind=line["kind"],
        previous_quantity=None if money else line.get("quantity"),
        quantity=None if money else size,
        unit=None if money else line["unit"],
        previous_amount=line.get("amount") if money else None,
        amount=amount if money else None,
        currency="EUR" if money else None,
        weight_kg=None if money else size,
        reason="a truck more",
    )


def histories(
    steps: Sequence[tuple[tuple[Any, ...], int]],
) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    """The needs posted first, then the pledges' events (and the late need) in order."""
    history = History()
    for need_id in ("flour", "grain", "fuel"):
        history.post(need_id)
    first = list(history.events)
    rest: list[RecordedEvent] = []
    for step, seconds in steps:
        history.at += timedelta(seconds=seconds)
        event = history.step(step)
        if event is not None:
            rest.append(event)
    return first, rest


def batches(events: list[RecordedEvent], sizes: list[int]) -> list[list[RecordedEvent]]:
    """`events` cut into batches of the sizes in turn, needs' events and pledges' apart (the
    projections take a batch one after another: a need's events before the pledges' of its
    batch, whatever their order)."""
    out: list[list[RecordedEvent]] = []
    current: list[RecordedEvent] = []
    turn = 0
    for event in events:
        if current and current[0].stream_type != event.stream_type:
            out.append(current)
            current, turn = [], turn + 1
        current.append(event)
        if len(current) == sizes[turn % len(sizes)]:
            out.append(current)
            current, turn = [], turn + 1
    return out + ([current] if current else [])


async def rows(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every row of the read models as text (a numeric's scale too)."""
    return {
        t: [str(tuple(r)) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")]
        for t in TABLES
    }


async def apply(conn: asyncpg.Connection, chunks: list[list[RecordedEvent]]) -> None:
    for chunk in chunks:
        async with conn.transaction():
            await proj.project(conn, APPLIED, chunk)


@pytest.fixture
async def two(pg_server: str) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    schema = (directory.SCHEMA, dbmod.schema_text("services.pledges"))
    async with fresh_database(pg_server, *schema) as a, fresh_database(pg_server, *schema) as b:
        one, other = await asyncpg.connect(a), await asyncpg.connect(b)
        try:
            yield one, other
        finally:
            await one.close()
            await other.close()


async def test_one_by_one_and_in_batches_of_any_size_leave_the_same_rows(
    two: tuple[asyncpg.Connection, asyncpg.Connection],
) -> None:
    cases: list[tuple[list[tuple[tuple[Any, ...], int]], list[int]]] = []

    @settings(
        max_examples=40,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(sequences, batch_sizes)
    def collect(steps: list[tuple[tuple[Any, ...], int]], sizes: list[int]) -> None:
        cases.append((steps, sizes))

    collect()
    # a pledge made and withdrawn in one batch: the need's figures move and come back, each
    # step leaving its scale on them ("900" first, "900.000" after), as one by one
    flour = {"kind": "in_kind", "need_id": "flour", "quantity": "0.005", "unit": "kg"}
    cases.append(([(("make", 0, [flour]), 1), (("withdraw", 0), 1)], [5]))
    one, other = two
    counted = delivered = 0
    for steps, sizes in cases:
        first, rest = histories(steps)
        for conn in two:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        await apply(one, [[e] for e in first + rest])
        await apply(other, [[e] for e in first] + batches(rest, sizes))
        alone = await rows(one)
        assert await rows(other) == alone, (steps, sizes)
        # every change to a need and every pledge event delivered again: nothing changes
        changes = [e for e in rest if e.stream_type == ev.STREAM_NEED]
        changes = [e for e in changes if e.event_type != ev.NEED_POSTED]
        await apply(other, [changes, [e for e in rest if e.stream_type == ev.STREAM_PLEDGE]])
        assert await rows(other) == alone, steps
        for need_id in NEEDS:
            if await one.fetchval("SELECT 1 FROM needs WHERE need_id = $1", need_id):
                figures = await kept(one, need_id)
                assert figures == await recomputed(one, need_id), (need_id, steps)
                counted += figures[0] != 0
                delivered += figures[2] != 0
    # the sequences did count lines towards needs, and goods or money that arrived
    assert counted > 10 and delivered > 3, (counted, delivered)


def test_batches_cut_a_history_as_asked() -> None:
    """The batches the test above applies: every event once, in order, needs' and pledges'
    apart."""
    _, rest = histories(
        [(("make", 0, [{"kind": "money", "need_id": "fuel", "amount": 5}]), 1)] * 3
        + [(("post-late",), 1), (("commit", 0), 1), (("again", 3), 1)]  # 3: the first made
    )
    chunks = batches(rest, [2, 1])
    assert [len(c) for c in chunks] == [2, 1, 1, 1, 1]
    assert [e for c in chunks for e in c] == rest
    assert chunks[2][0].event_type == ev.NEED_POSTED
    assert rest[-1] is rest[0]
