"""Schema evolution of shipments.convoy-dispatched (issue 18 point 2): version 3 no longer
carries the number of manifest lines and their weight (the convoy's state has them); version 2
events stay in the log as an older release wrote them, decode through the upcaster, and fold,
project and rebuild into what a log of version 3 alone gives."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.shipments import domain, handlers, projections, requests, views
from services.shipments import events as ev
from services.shipments.domain import codec as snapshots
from shared import sealer
from shared.auth import Role
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.projections import rebuild
from shared.testing import seal_everything
from tests.shipments.conftest import ShipmentsApi, entry, unit_of_work

READ_MODELS = ("convoys", "manifest_lines", "convoy_timeline")
DISPATCH = entry(
    "dispatch",
    "2022-06-07T06:10:00+02:00",
    "d",
    custody={"organisation_id": "transports-nord"},
    note="left on time",
)
ROAD = [
    entry("checkpoint", "2022-06-08T12:00:00+02:00", "k", place="Kraków"),
    entry("arrival", "2022-06-10T10:00:00+03:00", "a"),
]


def test_a_version_2_dispatch_decodes_to_version_3_without_its_derived_values() -> None:
    v2 = {
        "convoy_id": "c1",
        "entry_id": "d",
        "entry_sha256": "0" * 64,
        "note": None,
        "manifest_lines": 2,
        "weight_kg": "1800",
        "custody": {"organisation_id": "transports-nord"},
    }
    stored = dict(v2)
    older = ev.CODEC.decode_data(ev.CONVOY_DISPATCHED, 2, v2)
    current = ev.CODEC.decode_data(
        ev.CONVOY_DISPATCHED,
        3,
        {k: v for k, v in v2.items() if k not in ("manifest_lines", "weight_kg")},
    )
    assert type(older) is ev.ConvoyDispatched and older == current
    assert v2 == stored  # the stored form is left as it was
    assert ev.CODEC.version(ev.CONVOY_DISPATCHED) == 3
    # the privacy migration still seals version 1 into version 2, which carries them
    assert ev.SEALED[ev.CONVOY_DISPATCHED] is ev.V2.ConvoyDispatched


async def _convoy_loaded(api: ShipmentsApi, convoy_id: str) -> None:
    await api.plan(convoy_id, drivers=[])  # (each convoy seals its drivers apart)
    loaded = await api.load(convoy_id, manifest_line_id="m1", quantity="10")
    assert loaded.status_code == 201, loaded.text
    loaded = await api.load(convoy_id, manifest_line_id="m2", quantity="5")
    assert loaded.status_code == 201, loaded.text


async def _dispatched_as_version_2(api: ShipmentsApi, convoy_id: str) -> None:
    """The dispatch as the release before version 3 wrote it: its store append and projection,
    the derived values worked out from the convoy's loads."""
    sent = requests.DispatchIn.model_validate(DISPATCH).command()
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            uow = unit_of_work(conn)
            state = await handlers.CONVOYS.load(uow, convoy_id)
            payload = ev.V2.ConvoyDispatched(
                convoy_id=convoy_id,
                entry_id=sent.entry_id,
                entry_sha256=sent.digest,
                manifest_lines=len(state.loaded),
                weight_kg=domain.text(state.weight_kg),
                **sent.details,
            )
            recorded = await uow.store.append(
                stream_type=ev.STREAM_CONVOY,
                stream_id=handlers.CONVOYS.stream_id(convoy_id),
                expected_version=state.version,
                events=[
                    NewEvent(
                        ev.CONVOY_DISPATCHED,
                        ev.payload(payload),
                        occurred_at=sent.occurred_at,
                        schema_version=2,
                    )
                ],
                metadata=Metadata(actor="release-before-v3", organisation="transports-nord"),
                now=datetime.now(UTC),
            )
            await uow.project(recorded)
    finally:
        await conn.close()


async def _rows(conn: asyncpg.Connection) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for table in READ_MODELS:
        rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
        out[table] = [tuple(r.values()) for r in rows]
    return out


def _as(document: dict[str, Any], convoy_id: str) -> dict[str, Any]:
    """A convoy's document as another convoy's id would read it, without when the log got
    each event (the two convoys' writes came a moment apart)."""
    text = json.dumps(document).replace(f'"{document["convoy_id"]}"', f'"{convoy_id}"')

    def timeless(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: timeless(v) for k, v in node.items() if k != "recorded_at"}
        if isinstance(node, list):
            return [timeless(v) for v in node]
        return node

    out: dict[str, Any] = timeless(json.loads(text))
    return out


async def test_a_log_holding_both_versions_folds_rebuilds_verifies_and_shows_them_as_stored(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    # "old": dispatched by the release before version 3; "new": everything through the API
    for convoy_id in ("old", "new"):
        await _convoy_loaded(api, convoy_id)
    await _dispatched_as_version_2(api, "old")
    dispatched = await api.entries("new", DISPATCH)
    assert dispatched.status_code == 200, dispatched.text
    for convoy_id in ("old", "new"):
        road = await api.entries(convoy_id, *ROAD)
        assert road.status_code == 200, road.text
    # the old dispatch re-sent by its device is recognised: the same entry, nothing appended
    again = await api.entries("old", DISPATCH)
    assert again.status_code == 200, again.text
    assert again.json()["already_recorded"] == 1

    conn = await asyncpg.connect(api.url)
    try:
        stored = {
            r["stream_id"]: (r["schema_version"], json.loads(r["data"]))
            for r in await conn.fetch(
                "SELECT stream_id, schema_version, data FROM events WHERE event_type = $1",
                ev.CONVOY_DISPATCHED,
            )
        }
        old_id, new_id = (handlers.CONVOYS.stream_id(c) for c in ("old", "new"))
        assert stored[old_id][0] == 2 and stored[new_id][0] == 3
        assert stored[old_id][1]["manifest_lines"] == 2
        assert stored[old_id][1]["weight_kg"] == "1200"  # 15 x 80 kg
        assert {"manifest_lines", "weight_kg"}.isdisjoint(stored[new_id][1])

        # the same state: from the snapshots the writes left, and folded from the start
        uow = unit_of_work(conn)
        far = datetime(2100, 1, 1, tzinfo=UTC)
        documents = {
            (convoy_id, how): views.document(
                await handlers.CONVOYS.load(uow, convoy_id, as_of=as_of)
            )
            for convoy_id in ("old", "new")
            for how, as_of in (("snapshot", None), ("log", far))
        }
        new = documents["new", "log"]
        assert new["weight_kg"] == "1200" and len(new["manifest"]) == 2
        assert new["custody"]["organisation_id"] == "transports-nord"
        for (convoy_id, how), document in documents.items():
            assert _as(document, "new") == _as(new, "new"), (convoy_id, how)
        [old_row, new_row] = [
            await conn.fetchrow(
                "SELECT status, dispatched_at, last_news_at, document::text AS document"
                " FROM convoys WHERE convoy_id = $1",
                c,
            )
            for c in ("old", "new")
        ]
        assert old_row["status"] == new_row["status"] == "arrived"
        assert old_row["dispatched_at"] == new_row["dispatched_at"]
        assert _as(json.loads(old_row["document"]), "new") == _as(
            json.loads(new_row["document"]), "new"
        )

        # a rebuild (twinaid rebuild) replays both versions into the same rows
        before = await _rows(conn)
        await conn.execute("UPDATE convoys SET status = 'corrupted', document = '{}'::jsonb")
        await conn.execute("DELETE FROM manifest_lines")
        await conn.execute("DELETE FROM convoy_timeline")
        await rebuild(conn, projections.ALL)
        assert await _rows(conn) == before

        # the chain covers the stored form of both: the log verifies
        await seal_everything(conn)
        verdict = await sealer.verify(conn, service="shipments")
        assert verdict.intact, verdict
        events = {
            str(r["event_id"]): json.loads(r["data"])
            for r in await conn.fetch("SELECT event_id, data FROM events")
        }
    finally:
        await conn.close()

    # the HTTP history shows each event as it is stored, of whichever version
    headers = await api.as_("lille", Role.LOGISTICS)
    for convoy_id in ("old", "new"):
        timeline = await api.client.get(f"/v1/convoys/{convoy_id}/timeline", headers=headers)
        assert timeline.status_code == 200, timeline.text
        shown = timeline.json()["entries"]
        assert len(shown) == 6
        for item in shown:
            assert item["data"] == events[item["event_id"]], item
        [dispatch] = [i for i in shown if i["event_type"] == ev.CONVOY_DISPATCHED]
        assert ("weight_kg" in dispatch["data"]) is (convoy_id == "old")


def test_a_kept_road_entry_decodes_by_the_version_it_was_stored_with() -> None:
    """A snapshot keeps an entry's data with its schema version: a version 2 dispatch kept in
    one decodes as it would from the log."""
    recorded = RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type=ev.STREAM_CONVOY,
        stream_id="convoy-c1",
        stream_version=3,
        event_type=ev.CONVOY_DISPATCHED,
        schema_version=2,
        occurred_at=datetime(2022, 6, 7, 4, 10, tzinfo=UTC),
        recorded_at=datetime(2022, 6, 7, 4, 11, tzinfo=UTC),
        data={
            "convoy_id": "c1",
            "entry_id": "d",
            "entry_sha256": "0" * 64,
            "note": None,
            "manifest_lines": 1,
            "weight_kg": "80",
            "custody": {"organisation_id": "transports-nord"},
        },
        metadata=Metadata(),
    )
    kept = domain.entry_of(ev.CODEC.decode(recorded))
    again = snapshots.decode(snapshots.encode(domain.Convoy("c1", custody_change=kept)))
    entry_back = again.custody_change
    assert entry_back is not None and entry_back.decoded is None
    assert entry_back.schema_version == 2 and entry_back.data == recorded.data
    assert entry_back.payload == kept.payload
    assert type(entry_back.payload) is ev.ConvoyDispatched
