"""The read models are derived from the log alone: dropped and replayed, they come back equal."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from services.pledges import demo, domain, handlers, projections, subscriptions
from services.pledges import events as ev
from shared import projections as proj
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent, RecordedEvent
from tests.pledges.conftest import PledgesApi, incoming, loading
from tests.pledges.test_deliveries import line


async def dump(conn: asyncpg.Connection) -> dict[str, list[str]]:
    tables = [t for p in projections.ALL for t in p.tables]
    return {
        t: [str(tuple(r)) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2, 3")]
        for t in tables
    }


async def test_rebuilding_the_read_models_from_the_log_gives_the_same_rows(
    api: PledgesApi,
) -> None:
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    conn = await asyncpg.connect(api.url)
    try:
        delivered = {
            **line(received="45", damaged="5"),
            "pledge_id": "lille-kharkiv-generators-2023",
        }
        event = incoming(
            "shipments", "shipments.delivery-confirmed", {"convoy_id": "c1", "lines": [delivered]}
        )
        async with conn.transaction():
            for loaded in loading(event):  # what shipments loaded on the convoy, first
                await subscriptions.manifest_line_loaded(conn, loaded)
            await subscriptions.delivery_confirmed(conn, event)
        before = await dump(conn)
        assert len(before["deliveries"]) == 1 and len(before["needs"]) == 4
        replayed = await proj.rebuild(conn, projections.ALL)
        assert replayed == int(await conn.fetchval("SELECT count(*) FROM events"))
        assert await dump(conn) == before
    finally:
        await conn.close()


async def test_every_read_model_is_keyed_by_its_first_column(api: PledgesApi) -> None:
    """The audit's replay compares live and rebuilt rows by their first column."""
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    mixed = {
        "pledge_id": "mixed",
        "donor_id": "lille",
        "recipient_id": "kharkiv",
        "lines": [
            {
                "kind": "in_kind",
                "item": "Blanket",
                "category": "shelter",
                "quantity": "500",
                "unit": "pieces",
            },
            {
                "kind": "money",
                "item": "Fuel",
                "category": "fuel",
                "amount": 250_000,
                "currency": "EUR",
            },
        ],
    }
    assert (await api.client.post("/v1/pledges", json=mixed)).status_code == 201
    for table in (t for p in projections.ALL for t in p.tables):
        [first] = await api.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = $1 AND ordinal_position = 1",
            table,
        )
        [row] = await api.fetch(
            f'SELECT count(*) AS n, count(DISTINCT "{first["column_name"]}") AS d FROM {table}'
        )
        assert row["n"] == row["d"], table
    [lines] = await api.fetch("SELECT count(*) AS n FROM pledge_lines")
    assert lines["n"] == 7


async def as_written(
    conn: asyncpg.Connection, state: domain.Pledge, events: list[NewEvent]
) -> list[RecordedEvent]:
    """`events` appended to the pledge's stream as they are (an older version among them) and
    projected, as the service did when it wrote that version."""
    recorded = await PostgresEventStore(conn).append(
        stream_type=ev.STREAM_PLEDGE,
        stream_id=handlers.PLEDGES.stream_id(state.pledge_id),
        expected_version=state.version,
        events=events,
        metadata=Metadata(actor="test", correlation_id=state.correlation_id),
        now=datetime.now(UTC),
    )
    await proj.project(conn, projections.ALL, recorded)
    return recorded


async def test_a_log_holding_delivery_recorded_2_and_3_builds_the_same_read_models(
    api: PledgesApi,
) -> None:
    """Version 2 of pledges.delivery-recorded carried the line's delivered total and the
    pledge's status; version 3 leaves them to the projections. A log holding both: each
    decodes to the same payload, the live rows are what a rebuild gives, and the status the
    projections worked out is the pledge's own (domain.status_of)."""
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    pledge_id = "lille-kharkiv-generators-2023"
    conn = await asyncpg.connect(api.url)
    try:
        first = {**line("m1", received="45", damaged="5"), "pledge_id": pledge_id}
        event = incoming(
            "shipments", "shipments.delivery-confirmed", {"convoy_id": "c1", "lines": [first]}
        )
        async with conn.transaction():  # recorded now: version 3
            for loaded in loading(event):
                await subscriptions.manifest_line_loaded(conn, loaded)
            await subscriptions.delivery_confirmed(conn, event)
        # a second delivery as version 2 recorded it: the figures it carried worked out from
        # the pledge as it stood, as the domain did then
        async with conn.transaction():
            uow = handlers.reading(conn)
            state = await handlers.PLEDGES.load(uow, pledge_id)
            second = domain.DeliveredLine(
                convoy_id="c2",
                manifest_line_id="m2",
                delivery_event_id=str(uuid.uuid4()),
                line_id="generators",
                unit="pieces",
                loaded=Decimal(30),
                received=Decimal(30),
                damaged=Decimal(0),
                short=Decimal(0),
                lost=Decimal(0),
            )
            decided = domain.record_deliveries(state, [second], occurred_at=datetime.now(UTC))
            after = domain.evolve_events(state, decided)
            v3 = next(e for e in decided if e.event_type == ev.DELIVERY_RECORDED)
            figures = {
                "delivered_total": domain.quantities.fmt(after.line("generators").delivered),
                "pledge_status": after.status.value,
            }
            v2 = replace(v3, data={**v3.data, **figures}, schema_version=2)
            ev.PREVIOUS[ev.DELIVERY_RECORDED, 2].model_validate(v2.data)
            recorded = await as_written(conn, state, [v2 if e is v3 else e for e in decided])
        stored = await conn.fetch(
            "SELECT schema_version FROM events WHERE event_type = $1 ORDER BY stream_version",
            ev.DELIVERY_RECORDED,
        )
        assert [r["schema_version"] for r in stored] == [3, 2]
        [as_stored] = [e for e in recorded if e.event_type == ev.DELIVERY_RECORDED]
        assert ev.CODEC.decode(as_stored).payload == ev.CODEC.decode_data(
            v3.event_type, v3.schema_version, v3.data
        )
        [row] = await conn.fetch("SELECT status FROM pledges WHERE pledge_id = $1", pledge_id)
        [line_row] = await conn.fetch(
            "SELECT delivered FROM pledge_lines WHERE pledge_id = $1 AND line_id = 'generators'",
            pledge_id,
        )
        final = await handlers.PLEDGES.load(handlers.reading(conn), pledge_id)
        assert row["status"] == final.status.value == figures["pledge_status"]
        assert line_row["delivered"] == final.line("generators").delivered == 75
        before = await dump(conn)
        await proj.rebuild(conn, projections.ALL)
        assert await dump(conn) == before
    finally:
        await conn.close()


async def test_money_received_and_line_amended_1_and_2_build_the_same_read_models(
    api: PledgesApi,
) -> None:
    """Version 1 of pledges.money-received (the line's received total, what is outstanding,
    the pledge's status) and of pledges.pledge-line-amended (the pledge's status) carried
    derived values; version 2 leaves them to the projections. A pledge whose log holds both:
    each version 1 event decodes to what version 2 says, the rows are a rebuild's, and the
    status and totals are the pledge's own."""
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    funds = {"kind": "money", "item": "Fuel", "category": "fuel", "amount": 10_000}
    body = {"pledge_id": "mixed", "donor_id": "lille", "recipient_id": "kharkiv", "commit": True}
    made = await api.client.post(
        "/v1/pledges", json={**body, "lines": [{**funds, "currency": "EUR"}]}
    )
    assert made.status_code == 201, made.text
    now = datetime.now(UTC)
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():  # 40.00 EUR received, as version 1 recorded it
            state = await handlers.PLEDGES.load(handlers.reading(conn), "mixed")
            receipt = domain.ReceiveMoney("1", 4_000, "EUR", now.date(), "wire-1", now)
            [v2] = domain.receive_money(state, receipt, now=now, acting_for=None)
            after = domain.evolve_events(state, [v2])
            derived = {"received_total": 4_000, "outstanding": 6_000}
            v1 = replace(
                v2,
                data={**v2.data, **derived, "pledge_status": after.status.value},
                schema_version=1,
            )
            [received] = await as_written(conn, state, [v1])
        assert ev.CODEC.decode(received).payload == ev.CODEC.decode_data(v2.event_type, 2, v2.data)
        async with conn.transaction():  # the line amended to 80.00 EUR, as version 1 did
            state = await handlers.PLEDGES.load(handlers.reading(conn), "mixed")
            decided = domain.amend_line(
                state,
                "1",
                size=8_000,
                reason="less fuel",
                occurred_at=now,
                now=now,
                acting_for=None,
            )
            after = domain.evolve_events(state, decided)
            older = [
                replace(e, data={**e.data, "pledge_status": after.status.value}, schema_version=1)
                for e in decided
            ]
            await as_written(conn, state, older)
        paid = {
            "amount": 4_000,
            "currency": "EUR",
            "received_on": str(now.date()),
            "reference": "wire-2",
        }
        answer = await api.client.post("/v1/pledges/mixed/lines/1/receipts", json=paid)
        assert answer.status_code == 200, answer.text  # version 2, the status worked out
        assert answer.json()["status"] == "fulfilled"
        versions = await conn.fetch(
            "SELECT event_type, schema_version FROM events WHERE stream_id = 'pledge-mixed'"
            " AND event_type <> $1 ORDER BY stream_version",
            ev.PLEDGE_COMMITTED,
        )
        assert [(r["event_type"], r["schema_version"]) for r in versions] == [
            (ev.PLEDGE_MADE, 2),
            (ev.MONEY_RECEIVED, 1),
            (ev.PLEDGE_LINE_AMENDED, 1),
            (ev.MONEY_RECEIVED, 2),
        ]
        final = await handlers.PLEDGES.load(handlers.reading(conn), "mixed")
        [row] = await conn.fetch(
            "SELECT p.status, l.amount, l.received FROM pledges p JOIN pledge_lines l"
            " USING (pledge_id) WHERE pledge_id = 'mixed'"
        )
        assert (row["status"], row["amount"], row["received"]) == ("fulfilled", 8_000, 8_000)
        assert final.status.value == row["status"] and final.lines[0].outstanding == 0
        before = await dump(conn)
        await proj.rebuild(conn, projections.ALL)
        assert await dump(conn) == before
    finally:
        await conn.close()
