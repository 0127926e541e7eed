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
from shared.incoming import MAX_POSITION, Handler, Incoming, Unparseable, header_map, whole
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger("twinaid.consumer")

# A message parked already (the same consumer, topic, partition, offset, key and value: fetched
# again after a restart, or its batch handled again) is not parked twice. The key and value
# tell a message from another at the same offset of a broker that restarted empty.
_NOT_PARKED = (
    " WHERE $4::integer IS NULL OR NOT EXISTS (SELECT 1 FROM {table} p WHERE p.consumer = $1"
    ' AND p.topic = $3 AND p.partition = $4 AND p."offset" = $5'
    " AND p.key IS NOT DISTINCT FROM $6 AND p.value IS NOT DISTINCT FROM $7)"
    " RETURNING true"
)


def _storable(text: str) -> str:
    """Text as PostgreSQL's text and jsonb hold it: a NUL character (which they refuse) shown
    as U+FFFD, as an undecodable byte of a header is."""
    return text.replace("\x00", "\ufffd")


def _headers_json(record: ConsumerRecord[bytes, bytes] | None) -> tuple[dict[str, str], str]:
    """A message's headers, and as the parking tables' jsonb holds them."""
    headers = header_map(record) if record is not None else {}
    return headers, json.dumps({_storable(k): _storable(v) for k, v in headers.items()})


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
        headers, headers_json = _headers_json(record)
        position: int | None = incoming.position if incoming is not None else None
        if position is None:  # what the header says, if a position can say it
            with contextlib.suppress(KeyError, Unparseable):
                position = whole(headers["ce_position"], "position", low=1, high=MAX_POSITION)
        if record is not None:
            value = record.value
        else:
            value = json.dumps(dict(incoming.data) if incoming else {}).encode()
        async with self.db.transaction() as conn:
            parked = await conn.fetchval(
                'INSERT INTO quarantine (consumer, upstream, topic, partition, "offset",'
                " key, value, position, event_id, headers, reason, authentic)"
                " SELECT $1::text, $2::text, $3::text, $4::integer, $5::bigint, $6::bytea,"
                " $7::bytea, $8::bigint, $9::text, $10::jsonb, $11::text, $12::boolean"
                + _NOT_PARKED.format(table="quarantine"),
                self.name,
                source,
                topic,
                record.partition if record else None,
                record.offset if record else None,
                record.key if record else None,
                value,
                position,
                str(incoming.event_id) if incoming else _storable(headers.get("ce_id", "")) or None,
                headers_json,
                _storable(reason),
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
        if record is not None and not authentic and source in self.handlers:
            self.resync.add(source)  # the authentic event, from the upstream's feed
        if not parked:
            return  # parked before: counted, logged and on the .dlq topic then
        self.quarantined += 1
        self.metrics.quarantined.labels(service=self.name, upstream=source).inc()
        log.warning("quarantined a message from %s at position %s: %s", topic, position, reason)
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
        _, headers_json = _headers_json(record)
        async with self.db.transaction() as conn:
            parked = await conn.fetchval(
                'INSERT INTO dead_letters (consumer, reason, topic, partition, "offset", key,'
                " value, headers) SELECT $1::text, $2::text, $3::text, $4::integer, $5::bigint,"
                " $6::bytea, $7::bytea, $8::jsonb" + _NOT_PARKED.format(table="dead_letters"),
                self.name,
                _storable(reason),
                topic,
                record.partition if record else None,
                record.offset if record else None,
                record.key if record else None,
                record.value
                if record
                else json.dumps(dict(incoming.data) if incoming else {}).encode(),
                headers_json,
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
        if not parked:
            return  # parked before: counted, logged and on the .dlq topic then
        self.dead += 1
        self.metrics.dead_letters.inc()
        log.warning("dead-lettered a message from %s", topic, extra={"reason": reason})
        await self._to_dlq(record, reason)
