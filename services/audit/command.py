"""`twinaid audit replay|compare|trace|export|verify-export`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from services.audit import copies, export, replay, sources, trace
from shared import kafka, keys
from shared.events import RecordedEvent, Selection
from shared.settings import SERVICES, Settings, topic_for

DEFAULT_FEEDS = {s: f"http://127.0.0.1:{8101 + i}" for i, s in enumerate(SERVICES)}


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="replay, verify, compare, trace and export")
    actions = audit.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a service's API (default: the dev stack's ports)",
    )
    common.add_argument(
        "--key",
        default=os.environ.get("TWINAID_AUDIT_KEY"),
        help="an auditor key (default: $TWINAID_AUDIT_KEY)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument(
        "--trusted-keys",
        type=Path,
        metavar="FILE",
        help="the pinned public keys that sign checkpoints, JSON like TRUSTED_KEYS"
        ' ({"registry": ["<base64>"], ...}; make run writes .data/keys/trusted_keys.json);'
        " default: $TRUSTED_KEYS",
    )
    common.add_argument(
        "--service",
        action="append",
        default=[],
        choices=SERVICES,
        help="only these services (default: all)",
    )
    for name in ("replay", "compare"):
        p = actions.add_parser(
            name,
            parents=[common],
            help=(
                "read every service's history, verify chains and checkpoints, rebuild read models"
                if name == "replay"
                else "replay, then diff rebuilt and live read models"
            ),
        )
        p.add_argument("--source", choices=("feed", "kafka"), default="feed")
        p.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
        p.add_argument("--topic-prefix", default=os.environ.get("KAFKA_TOPIC_PREFIX", ""))
        p.add_argument(
            "--checkpoints", type=Path, help="a JSON list of signed checkpoints kept from earlier"
        )
    t = actions.add_parser("trace", parents=[common], help="the causal chain of one id")
    t.add_argument("target", help="a need, pledge, convoy or correlation id")
    e = actions.add_parser("export", parents=[common], help="JSON Lines or CSV with hashes")
    e.add_argument("service", choices=SERVICES)
    e.add_argument("file", type=Path)
    e.add_argument("--format", choices=("jsonl", "csv"))
    for option in ("stream-type", "event-type", "organisation", "correlation-id"):
        e.add_argument(f"--{option}")
    v = actions.add_parser("verify-export", help="check an export on its own")
    v.add_argument("file", type=Path)
    v.add_argument("--json", action="store_true")


def _feeds(given: list[str]) -> dict[str, str]:
    feeds = dict(DEFAULT_FEEDS)
    for item in given:
        service, _, url = item.partition("=")
        if service not in SERVICES or not url:
            raise SystemExit(f"twinaid: --url wants SERVICE=URL, got {item!r}")
        feeds[service] = url.rstrip("/")
    return feeds


def pinned_keys(given: Path | None, env: Mapping[str, str]) -> dict[str, list[str]]:
    """The pins of --trusted-keys FILE, else of $TRUSTED_KEYS, else none; SystemExit naming
    what is wrong with them."""
    where = str(given) if given else "$TRUSTED_KEYS"
    try:
        text = given.read_text() if given else env.get("TRUSTED_KEYS", "")
    except OSError as exc:
        raise SystemExit(f"twinaid: cannot read the pinned keys {where}: {exc.strerror}") from None
    if not text.strip():
        return {}
    try:
        pins = json.loads(text)
        if not isinstance(pins, dict) or not all(
            isinstance(k, list) and all(isinstance(raw, str) for raw in k) for k in pins.values()
        ):
            raise ValueError('not {"service": ["<base64 public key>", ...], ...}')
        keys.KeyRing.pinned(pins)
    except ValueError as exc:
        raise SystemExit(f"twinaid: the pinned keys in {where} are not usable: {exc}") from None
    return {str(service): list(raws) for service, raws in pins.items()}


def _progress(service: str, quiet: bool) -> Any:
    def show(n: int) -> None:
        if not quiet:
            print(f"\r{service}: {n:>10,} events read", end="", file=sys.stderr, flush=True)

    return show


async def _run(
    args: argparse.Namespace, databases: Mapping[str, str], scratch_server: str
) -> tuple[int, Any]:
    feeds = _feeds(getattr(args, "url", []))
    if args.action == "verify-export":
        result = export.verify_export(args.file)
        return (0 if result["intact"] else 1), result
    if not args.key:
        raise SystemExit("twinaid: an auditor key is needed (--key or $TWINAID_AUDIT_KEY)")
    async with httpx.AsyncClient() as client:
        if args.action == "trace":
            chosen = {s: u for s, u in feeds.items() if not args.service or s in args.service}
            steps = await trace.trace(client, chosen, key=args.key, target=args.target)
            return (0 if steps else 1), (
                [s.as_dict() for s in steps] if args.json else trace.table(steps)
            )
        if args.action == "export":
            where = Selection(
                stream_type=args.stream_type,
                event_type=args.event_type,
                organisation=args.organisation,
                correlation_id=args.correlation_id,
            )
            fmt = args.format or ("csv" if args.file.suffix == ".csv" else "jsonl")
            with args.file.open("w", newline="") as out:
                n = await export.export(
                    sources.from_feed(client, feeds[args.service], key=args.key),
                    where,
                    fmt=fmt,
                    out=out,
                )
            return 0, {"exported": n, "file": str(args.file), "format": fmt}
        held = json.loads(args.checkpoints.read_text()) if args.checkpoints else []
        pins = pinned_keys(args.trusted_keys, os.environ)
        reports = []
        for service in args.service or SERVICES:
            events = _source(args, client, feeds[service], service)
            mine = [c for c in held if c.get("service") == service]
            report, scratch = await replay.replay(
                service,
                events,
                scratch_server=scratch_server,
                held_checkpoints=mine,
                keys=keys.KeyRing.pinned(pins),
                progress=_progress(service, args.json),
            )
            try:
                if args.action == "compare" and scratch is not None:
                    report.differences = await replay.compare(
                        service, live_url=databases[service], rebuilt_url=scratch
                    )
            finally:
                if scratch is not None:
                    await replay.drop(scratch_server, scratch)
            if args.action == "compare":
                crossed = await copies.compare(
                    service,
                    live_url=databases[service],
                    scratch_server=scratch_server,
                    events_of=lambda upstream: _source(args, client, feeds[upstream], upstream),
                    pins=pins,
                )
                report.copies = crossed.rows
                report.differences += crossed.differences
            reports.append(report)
        if not args.json:
            print(file=sys.stderr)
        ok = all(r.verdict and r.verdict.intact and not r.differences for r in reports)
        return (0 if ok else 1), (
            [r.as_dict() for r in reports] if args.json else _table(reports, args.action)
        )


def kafka_security() -> dict[str, Any]:
    """How the auditor logs in to the broker, the way the workers do (shared/kafka.py
    `security`): KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME (the
    compose deployment's read-only principal is `auditor`), KAFKA_SASL_PASSWORD and
    KAFKA_SSL_CAFILE from the environment; without them, plaintext and no authentication (the
    dev broker). SystemExit naming the variables, never a password, when they are not usable."""
    try:
        return kafka.security(Settings())
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join([*(str(part).upper() for part in e["loc"]), e["msg"]]) for e in exc.errors()
        )
        raise SystemExit(f"twinaid: the environment's Kafka settings: {problems}") from None


def _source(
    args: argparse.Namespace, client: httpx.AsyncClient, url: str, service: str
) -> AsyncIterator[RecordedEvent]:
    if args.source == "kafka":
        if not args.kafka:
            raise SystemExit("twinaid: --kafka (or $KAFKA_BOOTSTRAP_SERVERS) is needed")
        pins = keys.KeyRing.pinned(pinned_keys(args.trusted_keys, os.environ))
        return sources.from_kafka(
            args.kafka,
            args.topic_prefix + topic_for(service),
            keys=pins,
            security=kafka_security(),
        )
    return sources.from_feed(client, url, key=args.key)


def _table(reports: list[replay.Replay], action: str) -> str:
    lines = [f"{'service':<10} {'events':>9} {'events/s':>9}  chain"]
    for r in reports:
        v = r.verdict
        status = (
            f"intact up to {v.head_position}, head {v.head_hash.hex()[:16]}..,"
            f" {v.checkpoints_checked} signed checkpoints"
            if v and v.intact
            else f"BROKEN at position {v.bad_position if v else '?'}: {v.problem if v else ''}"
        )
        rate = f"{r.events / r.seconds:,.0f}" if r.seconds else "-"
        lines.append(f"{r.service:<10} {r.events:>9,} {rate:>9}  {status}")
        if v and v.warning:
            lines.append(" " * 11 + f"WARNING: {v.warning}")
        if r.rows:
            lines.append(" " * 11 + "rebuilt: " + ", ".join(f"{t} {n}" for t, n in r.rows.items()))
        if r.copies:
            rebuilt = ", ".join(f"{t} {n}" for t, n in r.copies.items())
            lines.append(" " * 11 + f"copies rebuilt from the upstreams' logs: {rebuilt}")
        if action == "compare":
            lines.append(
                " " * 11
                + (
                    f"{len(r.differences)} differences"
                    if r.differences
                    else "no differences with the live read models"
                    + (" and copies" if r.copies else "")
                )
            )
            lines += [" " * 13 + _difference(d) for d in r.differences]
    return "\n".join(lines)


def _difference(d: dict[str, Any]) -> str:
    """`table key: column live <value> rebuilt <value>`, or the whole row a side lacks."""
    key = ", ".join(f"{c}={v}" for c, v in d["key"].items())
    copy_of = f" (copy of {d['copy_of']} facts)" if d.get("copy_of") else ""
    where = f"{d['table']}{copy_of} [{key}]"
    if d["column"] is None:
        row = d["live"] if d["rebuilt"] is None else d["rebuilt"]
        return f"{where}: {d['kind']}: {json.dumps(row, sort_keys=True, ensure_ascii=False)}"
    live, rebuilt = (
        json.dumps(d[side], sort_keys=True, ensure_ascii=False) for side in ("live", "rebuilt")
    )
    return f"{where} {d['column']}: live {live}, rebuilt {rebuilt}"


def run(args: argparse.Namespace, *, databases: Mapping[str, str], scratch_server: str) -> int:
    code, output = asyncio.run(_run(args, databases, scratch_server))
    print(
        json.dumps(output, indent=2, default=str)
        if getattr(args, "json", False) or not isinstance(output, str)
        else output
    )
    return code
