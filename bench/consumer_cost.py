"""What a consumer spends on each upstream event, with verification and without, in process.

`python -m bench.consumer_cost [--events 5000] [--rounds 3] [--pg system] [--profile]`

N registry events (`organisation-registered`, as the registry's API writes them) are sealed
and signed as the registry's relay publishes them (shared/outbox.py: RFC 8785 value, chain
hash, lanes per partition going on across publish batches) and turned into the records a
Kafka fetch returns, spread over the topic's partitions; no broker, no API. The pledges
consumer (its real handlers and the registry's published schemas) then takes them fetch by
fetch against a fresh PostgreSQL database, as its Kafka loop does (`consumed`: the batch
handled, then the prefixes it may have moved advanced): once without verification (the
baseline, CONSUMER_VERIFY=false) and once with it, each on a database of its own, in two
shapes:

- burst: fetches of up to 200 records (max_records), a partition's records in offset order,
  as a consumer draining a backlog gets them;
- steady: fetches of 10 records (200 writes/s, a 50 ms fetch wait), as in bench/relay.py's
  steady phase.

Printed: microseconds of this process's CPU and of wall time per event, events/s, database
round trips (statements, BEGIN and COMMIT included) and connections taken per fetch (the best
of `--rounds` runs of each); the CPU of the consumer's checks before applying, with
verification and without (no database: the steadiest figure on a busy machine); and the cost
of each verification step alone per event (parsing, chain links, signatures, schemas).
Nothing is asserted: the figures are for comparing a change with its baseline on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from aiokafka import ConsumerRecord

from bench.common import pg_server, say, table
from services.pledges import subscriptions
from shared import authenticity, chain, published
from shared import db as dbmod
from shared import directory as directory_model
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.events import Metadata, RecordedEvent
from shared.incoming import parse_record
from shared.keys import KeyRing
from shared.metrics import Metrics
from shared.settings import Settings
from shared.signing import Signer
from shared.testing import fresh_database
from tests.shared.kafka_helpers import relayed

PARTITIONS = 4
PUBLISH_BATCH = 500  # the relay's batch (settings.relay_batch_size)
BURST_FETCH = 200  # the consumer's max_records
STEADY_FETCH = 10  # 200 writes/s over a 50 ms fetch wait
SERVICES = Path(__file__).resolve().parents[1] / "services"
Record: TypeAlias = ConsumerRecord[bytes, bytes]


def registry_events(n: int) -> list[RecordedEvent]:
    """`n` organisations registered, sealed onto one chain."""
    start = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    events, previous = [], chain.GENESIS
    for position in range(1, n + 1):
        at = start + timedelta(milliseconds=5 * position)
        slug = f"org-{position:06d}-{uuid.uuid4().hex[:6]}"
        event = RecordedEvent(
            event_id=uuid.uuid4(),
            stream_type="organisation",
            stream_id=f"organisation-{slug}",
            stream_version=1,
            event_type="registry.organisation-registered",
            schema_version=1,
            occurred_at=at,
            recorded_at=at,
            data={
                "organisation_id": slug,
                "name": f"Hromada {position}",
                "kind": "municipality",
                "country": "UA",
                "aliases": [],
                "coordinates": None,
                "parent_id": None,
            },
            metadata=Metadata(
                actor="admin", organisation="twinaid", correlation_id=uuid.uuid4().hex
            ),
            position=position,
        )
        hashed = chain.link(previous, event, position=position)
        events.append(replace(event, hash=hashed))
        previous = hashed
    return events


def fetches(records: Sequence[Record], size: int) -> list[list[Record]]:
    """The records as fetches of at most `size` return them: each partition's in offset order,
    an even share of each partition that has records left."""
    if size <= STEADY_FETCH:  # steady: what was published during one fetch wait, in order
        return [list(records[i : i + size]) for i in range(0, len(records), size)]
    queues = {p: [r for r in records if r.partition == p] for p in range(PARTITIONS)}
    out: list[list[Record]] = []
    while any(queues.values()):
        share = max(1, size // sum(1 for q in queues.values() if q))
        fetch: list[Record] = []
        for p, queue in queues.items():
            fetch.extend(queue[:share])
            queues[p] = queue[share:]
        out.append(fetch)
    return out


class CountingDatabase(Database):
    """The service's pool, counting connections taken and statements sent."""

    def __init__(self, url: str) -> None:
        super().__init__(url, max_size=5)
        self.acquired = 0
        self.statements = 0

    def _logged(self, _: object) -> None:
        self.statements += 1

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with super().connection() as conn:
            self.acquired += 1
            conn.add_query_logger(self._logged)
            try:
                yield conn
            finally:
                conn.remove_query_logger(self._logged)


async def consume(
    server_url: str,
    signer: Signer,
    batches: Sequence[Sequence[Record]],
    *,
    verify: bool,
    profile: cProfile.Profile | None = None,
) -> dict[str, Any]:
    """One consumer over `batches` on a database of its own: its costs."""
    scripts = (directory_model.SCHEMA, dbmod.schema_text("services.pledges"))
    async with fresh_database(server_url, *scripts) as url:
        settings = Settings(
            database_url=url,
            consumer_verify=verify,
            trusted_keys={"registry": [signer.public_key]},
            log_level="WARNING",
        )
        db = CountingDatabase(url)
        await db.open()
        try:
            runner = ConsumerRunner(
                service="pledges",
                settings=settings,
                db=db,
                metrics=Metrics(f"bench{uuid.uuid4().hex[:6]}"),
                handlers=subscriptions.HANDLERS,
                contracts={u: SERVICES / u / "schemas" for u in subscriptions.HANDLERS},
            )
            db.acquired = db.statements = 0
            wall, cpu = time.perf_counter(), time.process_time()
            if profile is not None:
                profile.enable()
            for batch in batches:
                await runner.consumed(list(batch))
            if profile is not None:
                profile.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            async with db.connection() as conn:
                applied = await conn.fetchval("SELECT count(*) FROM inbox")
        finally:
            await db.close()
    n = sum(len(b) for b in batches)
    return {
        "events": n,
        "applied": applied,
        "quarantined": runner.quarantined,
        "cpu_us": 1e6 * cpu / n,
        "wall_us": 1e6 * wall / n,
        "per_s": n / wall,
        "statements": db.statements / len(batches),
        "connections": db.acquired / len(batches),
    }


def per_event_us(step: Callable[[], object], events: int, repeat: int = 3) -> float:
    """The best of `repeat` runs of `step` (over `events` events), in microseconds an event."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        step()
        best = min(best, time.process_time() - started)
    return 1e6 * best / events


def steps(records: Sequence[Record], signer: Signer) -> list[list[object]]:
    """Each check alone, per event (verify: over the fetches of each shape)."""
    parsed = [parse_record(r, upstream="registry") for r in records]
    bursts, steady = (
        [[parse_record(r, upstream="registry") for r in fetch] for fetch in fetches(records, size)]
        for size in (BURST_FETCH, STEADY_FETCH)
    )
    ring = KeyRing.pinned({"registry": [signer.public_key]})
    contract = published.Contract(SERVICES / "registry" / "schemas")

    def parse() -> None:
        for r in records:
            parse_record(r, upstream="registry")

    def links() -> None:
        for i in parsed:
            authenticity.link_problem(i, ring=ring)

    def signatures() -> None:
        for i in parsed:
            authenticity.signature_problem(ring, i)

    def verify_bursts() -> None:
        for b in bursts:
            authenticity.verify(ring, b)

    def verify_steady() -> None:
        for b in steady:
            authenticity.verify(ring, b)

    def schemas() -> None:
        for i in parsed:
            contract.problem(i.event_type, i.schema_version, i.data)

    named: list[tuple[str, Callable[[], None]]] = [
        ("parse a record", parse),
        ("chain link (each event)", links),
        ("signature (each event)", signatures),
        ("verify: burst fetches", verify_bursts),
        ("verify: steady fetches", verify_steady),
        ("published schema", schemas),
    ]
    return [[name, round(per_event_us(step, len(records)), 1)] for name, step in named]


async def checks(records: Sequence[Record], signer: Signer) -> list[list[object]]:
    """What the consumer's checks before applying (ConsumerRunner.checked: verification, the
    published schema) cost an event, with verification and without, for each shape."""
    rows: list[list[object]] = []
    for shape, size in (("burst", BURST_FETCH), ("steady", STEADY_FETCH)):
        batches = [
            [(parse_record(r, upstream="registry"), r) for r in fetch]
            for fetch in fetches(records, size)
        ]
        found = []
        for verify in (False, True):
            runner = ConsumerRunner(
                service="pledges",
                settings=Settings(
                    consumer_verify=verify, trusted_keys={"registry": [signer.public_key]}
                ),
                db=Database("postgresql://unused"),  # no query: nothing fails a check
                metrics=Metrics(f"bench{uuid.uuid4().hex[:6]}"),
                handlers=subscriptions.HANDLERS,
                contracts={u: SERVICES / u / "schemas" for u in subscriptions.HANDLERS},
            )
            best = float("inf")
            for _ in range(3):
                started = time.process_time()
                for batch in batches:
                    await runner.checked(list(batch))
                best = min(best, time.process_time() - started)
            found.append(1e6 * best / len(records))
        rows.append([f"checks before applying, {shape}", *(round(us, 1) for us in found)])
    return rows


async def main_async(args: argparse.Namespace) -> None:
    server_url = pg_server(args.pg)
    signer = Signer.generate()
    say(f"consumer cost: {args.events} signed registry events, in process, {args.pg} PostgreSQL")
    events = registry_events(args.events)
    records = relayed("registry", events, [signer] * len(events), partitions=PARTITIONS)
    shapes = {"burst": fetches(records, BURST_FETCH), "steady": fetches(records, STEADY_FETCH)}
    rows: list[list[object]] = []
    results: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for shape, batches in shapes.items():
        for n in range(args.rounds):  # interleaved: drift weighs on both alike
            for verify in (False, True) if n % 2 == 0 else (True, False):
                found = await consume(server_url, signer, batches, verify=verify)
                results.setdefault((shape, verify), []).append(found)
    for (shape, verify), runs in results.items():
        best = min(runs, key=lambda r: r["cpu_us"])
        rows.append(
            [
                shape,
                "on" if verify else "off",
                round(best["cpu_us"], 1),
                round(best["wall_us"], 1),
                round(best["per_s"]),
                round(best["statements"], 2),
                round(best["connections"], 2),
                f"{best['applied']}/{best['events']}",
                best["quarantined"],
            ]
        )
    say()
    say(
        table(
            [
                "fetches",
                "verify",
                "CPU us/event",
                "wall us/event",
                "events/s",
                "statements/fetch",
                "connections/fetch",
                "applied",
                "quarantined",
            ],
            rows,
        )
    )
    for shape in shapes:
        off = min(r["cpu_us"] for r in results[(shape, False)])
        on = min(r["cpu_us"] for r in results[(shape, True)])
        rate_off = max(r["per_s"] for r in results[(shape, False)])
        rate_on = max(r["per_s"] for r in results[(shape, True)])
        say(
            f"{shape}: verification adds {on - off:.1f} us of CPU an event"
            f" ({on / off:.2f}x); events/s with / without {rate_on / rate_off:.3f}"
        )
    say()
    say(
        table(
            ["CPU us/event", "verification off", "on"],
            await checks(records, signer),
        )
    )
    say()
    say(table(["each step alone", "CPU us/event"], steps(records, signer)))
    if args.profile:
        profile = cProfile.Profile()
        await consume(server_url, signer, shapes["burst"], verify=True, profile=profile)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        say()
        say("profile of a burst with verification (by own time):")
        say(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events consumed in each run")
    parser.add_argument("--pg", default="system", help="embedded | system | a server URL")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each shape and mode (the best counts)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then cProfile a verified burst (not counted)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
