"""Where a consumer parks what it does not apply, with the reason, in a table of its database and
on the `<topic>.dlq` topic: the quarantine (a message that failed a check: not authentic,
inconsistent with what was applied, implausible) and the dead letters (unreadable, or its
handler kept failing). The bottom layer of the consumer runner (shared/consumer.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from shared.db import Database
from shared.incoming import Handler, Incoming, header_map
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger("twinaid.consumer")


class Parking:
    """Quarantine and dead letters; the state every layer of the runner shares is declared
    here and set by ConsumerRunner.__init__."""

    name: str
    settings: Settings
    db: Database
    metrics: Metrics
    handlers: Mapping[str, Mapping[str, Handler]]
    quarantined: int
    dead: int
    # upstreams to catch up from their feeds (shared/consumer_catch_up.py)
    resync: set[str]
    _dlq: AIOKafkaProducer | None

    async def quarantine(
        self,
        record: ConsumerRecord[bytes, bytes] | None,
        incoming: Incoming | None,
        reason: str,
        *,
        upstream: str | None = None,
        authentic: bool = False,
    ) -> None:
        """Keep a message that failed a check, with the reason, in the quarantine table and
        the `.dlq` topic. An authentic event (its upstream signed it, but it is implausible)
        is parked: its position counts as handled. Anything else is not applied and its
        position not taken: the authentic event is fetched from the upstream's feed."""
        source = incoming.upstream if incoming is not None else upstream or "unknown"
        topic = record.topic if record is not None else self.settings.topic(source)
        headers = header_map(record) if record is not None else {}
        position: int | None = incoming.position if incoming is not None else None
        if position is None:
            with contextlib.suppress(KeyError, ValueError):
                position = int(headers["ce_position"])
        if record is not None:
            value = record.value
        else:
            value = json.dumps(dict(incoming.data) if incoming else {}).encode()
        async with self.db.transaction() as conn:
            await conn.execute(
                'INSERT INTO quarantine (consumer, upstream, topic, partition, "offset",'
                " position, event_id, key, value, headers, reason, authentic)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)",
                self.name,
                source,
                topic,
                record.partition if record else None,
                record.offset if record else None,
                position,
                str(incoming.event_id) if incoming else headers.get("ce_id"),
                record.key if record else None,
                value,
                json.dumps(headers),
                reason,
                authentic,
            )
            if authentic and incoming is not None:
                await conn.execute(
                    "INSERT INTO inbox (consumer, event_id, upstream, position, hash)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    self.name,
                    incoming.event_id,
                    incoming.upstream,
                    incoming.position,
                    incoming.chain_hash,
                )
        self.quarantined += 1
        self.metrics.quarantined.labels(service=self.name, upstream=source).inc()
        log.warning("quarantined a message from %s at position %s: %s", topic, position, reason)
        if record is not None and not authentic and source in self.handlers:
            self.resync.add(source)  # the authentic event, from the upstream's feed
        await self._to_dlq(record, reason)

    async def _to_dlq(self, record: ConsumerRecord[bytes, bytes] | None, reason: str) -> None:
        if self._dlq is not None and record is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(
                    self._dlq.send_and_wait(
                        f"{record.topic}.dlq",
                        key=record.key,
                        value=record.value,
                        headers=[*(record.headers or ()), ("twinaid_dlq_reason", reason.encode())],
                    ),
                    10,
                )

    async def dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes] | None,
        reason: str,
        *,
        incoming: Incoming | None = None,
    ) -> None:
        topic = (
            record.topic
            if record is not None
            else (self.settings.topic(incoming.upstream) if incoming else "unknown")
        )
        headers = header_map(record) if record is not None else {}
        async with self.db.transaction() as conn:
            await conn.execute(
                'INSERT INTO dead_letters (consumer, topic, partition, "offset", key, value,'
                " headers, reason) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
                self.name,
                topic,
                record.partition if record else None,
                record.offset if record else None,
                record.key if record else None,
                record.value
                if record
                else json.dumps(dict(incoming.data) if incoming else {}).encode(),
                json.dumps(headers),
                reason,
            )
            if incoming is not None:
                # Parked, not lost: the position counts as handled so catching up stops here.
                await conn.execute(
                    "INSERT INTO inbox (consumer, event_id, upstream, position)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    self.name,
                    incoming.event_id,
                    incoming.upstream,
                    incoming.position,
                )
        self.dead += 1
        self.metrics.dead_letters.inc()
        log.warning("dead-lettered a message from %s", topic, extra={"reason": reason})
        await self._to_dlq(record, reason)
