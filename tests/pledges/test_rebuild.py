"""The read models are derived from the log alone: dropped and replayed, they come back equal."""

from __future__ import annotations

import asyncpg

from services.pledges import demo, projections, subscriptions
from shared import projections as proj
from shared.auth import Role
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
