"""Event contracts (committed JSON Schemas, the delivery event pledges relies on) and read
models rebuilt from the log to the same rows."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import patch

import asyncpg
import pytest
from pydantic import ValidationError

from services.shipments import events as ev
from services.shipments import projections
from shared import contracts
from shared import projections as proj
from shared.auth import Role
from shared.projections import rebuild
from tests.shipments.conftest import ShipmentsApi, entry

FOLDER = Path(ev.__file__).parent.parent / "schemas"  # services/shipments/schemas
READ_MODELS = ("convoys", "manifest_lines", "convoy_timeline")


def test_the_committed_json_schemas_equal_the_event_models() -> None:
    docs = contracts.documents(ev.SCHEMAS, topic="shipments.events", previous=ev.PREVIOUS)
    committed = {p.name: p.read_text() for p in FOLDER.glob("*.json")}
    assert committed == docs, "regenerate services/shipments/schemas from the models"


@pytest.mark.parametrize("version", [1, 2])
def test_the_delivery_event_has_exactly_the_fields_of_the_cross_service_contract(
    version: int,
) -> None:
    doc = json.loads((FOLDER / f"shipments.delivery-confirmed.v{version}.json").read_text())
    assert sorted(doc["required"]) == sorted(
        [
            "convoy_id",
            "recipient_id",
            "origin_id",
            "carrier_id",
            "confirmed_by",
            "document",
            "lines",
        ]
    )
    line = doc["$defs"]["DeliveredLine"]
    assert sorted(line["properties"]) == sorted(
        [
            "manifest_line_id",
            "pledge_id",
            "line_id",
            "item",
            "unit",
            "loaded",
            "received",
            "damaged",
            "short",
            "lost",
            "correlation_id",
        ]
    )
    assert line["properties"]["unit"]["enum"] == ["pieces", "kg", "tonnes", "boxes", "litres"]
    # who confirmed: in clear in version 1; version 2 seals the name (the role stays clear)
    confirmed = doc["$defs"]["ConfirmedBy"]
    assert sorted(confirmed["required"]) == (
        ["name", "role"] if version == 1 else ["personal", "role", "sealed", "subject_id"]
    )


def test_an_event_payload_that_breaks_its_contract_is_refused() -> None:
    with pytest.raises(ValidationError):
        ev.BorderCrossed(
            convoy_id="c1",
            entry_id="b",
            entry_sha256="0" * 64,
            crossing_point="Medyka",
            outcome="waved through",  # type: ignore[arg-type]
        )
    with pytest.raises(ValidationError):
        ev.ManifestLineUnloaded(
            convoy_id="c1", manifest_line_id="m1", pledge_id="p", line_id="l", quantity="-1"
        )


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for table in (*READ_MODELS, "pledge_lines"):
        rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
        out[table] = [tuple(r.values()) for r in rows]
    return out


async def test_rebuilding_replays_the_log_into_the_same_rows_and_keeps_the_pledge_lines(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    await api.plan("c2")
    await api.load("c1", manifest_line_id="m1", quantity="10")
    await api.load("c2", manifest_line_id="m1", quantity="5")
    await api.client.post(
        "/v1/convoys/c2/cancel",
        json={"reason": "no driver"},
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    await api.load("c1", manifest_line_id="m2", quantity="3")
    unloaded = await api.client.post(
        "/v1/convoys/c1/manifest/m2/unload",
        json={"reason": "the room is needed"},
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    assert unloaded.status_code == 200, unloaded.text
    await api.entries(
        "c1",
        entry("checkpoint", "2022-06-08T12:00:00+02:00", "late", place="Kraków"),
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d"),
        entry(
            "incident",
            "2022-06-09T02:00:00+03:00",
            "t",
            incident="theft",
            description="one box taken at a night stop",
            lines=[{"manifest_line_id": "m1", "quantity": "1"}],
        ),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a"),
    )
    conn = await asyncpg.connect(api.url)
    try:
        before = await snapshot(conn)
        assert len(before["convoy_timeline"]) == 11
        assert {r[1]: r[10] for r in before["manifest_lines"] if r[0] == "c1"} == {
            "m1": "loaded",
            "m2": "unloaded",
        }
        # rebuilds hand the projection hundreds of events at once, replays smaller batches:
        # whatever the batch, the same rows as one write per event
        for size in (500, 3, 1):
            await conn.execute("UPDATE convoys SET status = 'corrupted'")
            await conn.execute("DELETE FROM manifest_lines")
            with patch.object(proj, "REBUILD_BATCH", size):
                replayed = await rebuild(conn, projections.ALL)
            assert replayed == 11
            assert await snapshot(conn) == before, f"batches of {size}"
    finally:
        await conn.close()
