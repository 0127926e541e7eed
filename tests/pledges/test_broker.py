"""Through a real Kafka-protocol broker: shipments' delivery published twice is counted once,
and what remains on the line goes out on pledges.events under the need's correlation id."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from services.pledges import subscriptions
from shared import kafka
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.events import Metadata, RecordedEvent
from shared.metrics import Metrics
from shared.outbox import Relay
from tests.conftest import published_headers, settings_for
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, generators_pledge
from tests.shared.kafka_helpers import produce, read_topic


def delivery_event(position: int) -> RecordedEvent:
    now = datetime.now(UTC)
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type="convoy",
        stream_id="convoy-lille-1",
        stream_version=position,
        event_type="shipments.delivery-confirmed",
        schema_version=1,
        occurred_at=now,
        recorded_at=now,
        data={
            "convoy_id": "lille-1",
            "recipient_id": "kharkiv",
            "origin_id": "lille",
            "carrier_id": "lille",
            "confirmed_by": {"name": "Olena K.", "role": "warehouse"},
            "document": None,
            "lines": [
                {
                    "manifest_line_id": "m1",
                    "pledge_id": "lille-generators",
                    "line_id": "generators",
                    "item": "Medium-sized generator",
                    "unit": "pieces",
                    "loaded": "50",
                    "received": "48",
                    "damaged": "2",
                    "short": "0",
                    "lost": "0",
                    "correlation_id": "kharkiv-generators",
                }
            ],
        },
        metadata=Metadata(actor="driver", organisation="lille", correlation_id="convoy-lille-1"),
        position=position,
    )


async def test_a_delivery_sent_twice_by_the_broker_counts_once_and_shipments_hears_the_rest(
    api: PledgesApi, kafka_bootstrap: str
) -> None:
    await api.ok(
        "/v1/needs", GENERATORS_NEED, by="kharkiv", **{"X-Correlation-ID": "kharkiv-generators"}
    )
    await api.ok("/v1/pledges", generators_pledge(commit=True), by="lille")
    settings = settings_for(
        api.url, kafka_bootstrap, kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}."
    )
    upstream = [settings.topic(s) for s in ("registry", "shipments")]
    await kafka.ensure_topics(
        settings, [*upstream, *(f"{t}.dlq" for t in upstream), settings.topic("pledges")]
    )
    line = delivery_event(position=1).data["lines"][0]
    loading = replace(
        delivery_event(position=1),
        event_id=uuid.uuid4(),
        event_type="shipments.manifest-line-loaded",
        data={"convoy_id": "lille-1", **line, "quantity": line["loaded"]},
    )
    headers, loaded_hash = published_headers("shipments", loading)
    await produce(
        kafka_bootstrap,
        settings.topic("shipments"),
        value=json.dumps(loading.data).encode(),
        key=loading.stream_id.encode(),
        headers=headers,
    )
    event = delivery_event(position=2)
    for _ in range(2):  # the broker hands the same message over twice
        await produce(
            kafka_bootstrap,
            settings.topic("shipments"),
            value=json.dumps(event.data).encode(),
            key=event.stream_id.encode(),
            headers=published_headers("shipments", event, previous=loaded_hash)[0],
        )
    db = Database(api.url, max_size=3)
    await db.open()
    runner = ConsumerRunner(
        service="pledges",
        settings=settings,
        db=db,
        metrics=Metrics("p1"),
        handlers=subscriptions.HANDLERS,
    )
    relay = Relay(service="pledges", settings=settings, db=db, metrics=Metrics("p2"))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(relay.run(stop))]
    try:
        published = await read_topic(kafka_bootstrap, settings.topic("pledges"), expect=6)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await db.close()
    assert (runner.applied, runner.duplicates) == (2, 1)
    assert len(await api.events("pledges.delivery-recorded")) == 1
    updates = [r for r in published if dict(r.headers)["ce_type"] == b"pledges.pledge-line-updated"]
    assert [json.loads(r.value)["remaining"] for r in updates] == ["100", "52"]
    assert {dict(r.headers)["ce_correlationid"] for r in updates} == {b"kharkiv-generators"}
    assert {r.key for r in updates} == {b"pledge-lille-generators"}
    caused = dict(updates[-1].headers)
    assert caused["ce_causationid"] == str(event.event_id).encode()
