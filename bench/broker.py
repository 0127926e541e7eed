"""The dev broker's own latency as its topic ages: Tansu alone, no twinaid code in the path.

`python -m bench.broker [--batches 20000] [--rate 250] [--bucket 2000] [--partitions 4]`

One producer sends one record per request (one batch each, as the relay does when writes
trickle in) at a fixed rate, with the producer and consumer settings of shared/kafka.py
(acks=all, fetch_max_wait_ms from Settings); one consumer reads them. Printed per bucket of
batches already held by the topic: produce acknowledgement p50/p99 and send -> consumer p50/p99,
each beside the first bucket (the fresh topic, the baseline of the same run). bench/relay.py
runs each phase on a broker of its own because of what this shows; Apache Kafka locates an
offset through its segment index and does not slow down with the log's length. Writes
bench/results/broker.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import MACHINE_NOTE, environment, met, pg_server, say, summary, table
from bench.common import write_results as save
from shared.infra import free_port, start_tansu
from shared.settings import Settings

TOPIC = "bench.broker-age"


async def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    port = free_port()
    broker = start_tansu(port)
    bootstrap = f"127.0.0.1:{port}"
    settings = Settings()
    sent: dict[int, float] = {}
    produce_ms: list[float] = []
    arrive_ms: dict[int, float] = {}
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, args.partitions, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=bootstrap,
            group_id="bench-broker-age",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=6000,
            heartbeat_interval_ms=2000,
        )
        await producer.start()
        await consumer.start()

        async def read() -> None:
            while len(arrive_ms) < args.batches:
                got = await consumer.getmany(timeout_ms=1000)
                now = time.perf_counter()
                for records in got.values():
                    for record in records:
                        n = int(record.value or b"-1")
                        arrive_ms[n] = (now - sent[n]) * 1000

        reader = asyncio.create_task(read())
        await asyncio.sleep(4)  # the group join, not what is measured
        interval = 1 / args.rate
        start = time.perf_counter()
        for n in range(args.batches):
            due = start + n * interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent[n] = time.perf_counter()
            await producer.send_and_wait(TOPIC, str(n).encode(), key=str(n % 97).encode())
            produce_ms.append((time.perf_counter() - sent[n]) * 1000)
            if n and n % args.bucket == 0:
                say(f"  {n:,} batches held ...")
        await asyncio.wait_for(reader, timeout=120)
        await producer.stop()
        await consumer.stop()
    finally:
        broker.terminate()
        broker.wait(10)
    rows = []
    for low in range(0, args.batches, args.bucket):
        high = min(low + args.bucket, args.batches)
        rows.append(
            {
                "batches_held": low,
                "produce_ack_ms": summary(produce_ms[low:high], 2),
                "send_to_consumer_ms": summary([arrive_ms[n] for n in range(low, high)], 1),
            }
        )
    return rows


async def main_async(args: argparse.Namespace) -> None:
    env = await environment(pg_server("system"), "system") if args.pg_env else {}
    say(f"broker ageing: {args.batches:,} one-record batches at {args.rate:g}/s into Tansu ...")
    rows = await measure(args)
    base = rows[0]

    def ratio(row: dict[str, Any], key: str) -> float:
        return round(row[key]["p99"] / base[key]["p99"], 2) if base[key]["p99"] else 0.0

    say()
    say(MACHINE_NOTE.format(cores=2))
    say(
        table(
            [
                "batches held",
                "produce p50",
                "produce p99",
                "x fresh",
                "to consumer p50",
                "to consumer p99",
                "x fresh",
            ],
            [
                (
                    f"{r['batches_held']:,}",
                    r["produce_ack_ms"]["p50"],
                    r["produce_ack_ms"]["p99"],
                    ratio(r, "produce_ack_ms"),
                    r["send_to_consumer_ms"]["p50"],
                    r["send_to_consumer_ms"]["p99"],
                    ratio(r, "send_to_consumer_ms"),
                )
                for r in rows
            ],
        )
    )
    last = rows[-1]
    flat = ratio(last, "send_to_consumer_ms") <= 1.2
    say(
        f"send -> consumer p99 at {last['batches_held']:,} batches held is"
        f" {ratio(last, 'send_to_consumer_ms')}x the fresh topic's"
        f" (flat within 20 %: {met(flat)}; a property of the dev broker, not of twinaid)"
    )
    if args.save:
        data = {
            "benchmark": "broker",
            "environment": env,
            "parameters": vars(args),
            "buckets": rows,
            "flat_within_20_percent": flat,
        }
        say(f"results: {save(args.save, data)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20000, help="one-record batches to send")
    parser.add_argument("--rate", type=float, default=250.0, help="batches per second")
    parser.add_argument("--bucket", type=int, default=2000, help="batches per printed row")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the topic")
    parser.add_argument(
        "--pg-env",
        action="store_true",
        help="record the machine's environment (reads the PostgreSQL at 127.0.0.1)",
    )
    parser.add_argument("--save", default="broker", help="bench/results/NAME.json ('' to skip)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
