"""`twinaid audit replay|compare|trace|export|verify-export`.

The APIs and the auditor key come from --url / --key, else the environment or the config file
(services/cli_support.py: TWINAID_<SERVICE>_URL, TWINAID_PORT_BASE, TWINAID_AUDIT_KEY, then
TWINAID_API_KEY)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from services import cli_support
from services.audit import copies, export, replay, sources, trace
from shared import kafka, keys
from shared.events import RecordedEvent, Selection
from shared.settings import SERVICES, Settings, topic_for

DEFAULT_FEEDS = {
    s: f"http://127.0.0.1:{cli_support.PORT_BASE + n}" for n, s in enumerate(SERVICES, start=1)
}


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="replay, verify, compare, trace and export")
    actions = audit.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    cli_support.add_url_option(common)
    common.add_argument(
        "--key",
        help="an auditor key (default: $TWINAID_AUDIT_KEY, $TWINAID_API_KEY, the config file)",
    )
    common.add_argument(
        "--trusted-keys",
        type=Path,
        metavar="FILE",
        help="the pinned public keys that sign checkpoints, JSON like TRUSTED_KEYS"
        ' ({"registry": ["<base64>"], ...}); default: $TRUSTED_KEYS, else the file make run'
        " writes ($TWINAID_DATA_DIR/keys/trusted_keys.json) when it exists",
    )
    cli_support.add_service_option(common)
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
        p.add_argument(
            "--source",
            choices=("feed", "kafka"),
            default="feed",
            help="read the history from each API's event feed (default) or from Kafka",
        )
        p.add_argument(
            "--kafka",
            default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            metavar="HOST:PORT",
            help="the broker, with --source kafka (default: $KAFKA_BOOTSTRAP_SERVERS)",
        )
        p.add_argument(
            "--topic-prefix",
            default=os.environ.get("KAFKA_TOPIC_PREFIX", ""),
            help="the topics' prefix, with --source kafka (default: $KAFKA_TOPIC_PREFIX)",
        )
        p.add_argument(
            "--checkpoints", type=Path, help="a JSON list of signed checkpoints kept from earlier"
        )
    t = actions.add_parser("trace", parents=[common], help="the causal chain of one id")
    t.add_argument("target", help="a need, pledge, convoy or correlation id")
    e = actions.add_parser("export", parents=[common], help="JSON Lines or CSV with hashes")
    e.add_argument("service", choices=SERVICES, help="whose history")
    e.add_argument("file", type=Path, help="the file to write")
    e.add_argument(
        "--format", choices=("jsonl", "csv"), help="default: csv for a .csv file, else jsonl"
    )
    for option in ("stream-type", "event-type", "organisation", "correlation-id"):
        e.add_argument(f"--{option}", help=f"only the events of this {option.replace('-', ' ')}")
    v = actions.add_parser("verify-export", help="check an export on its own")
    v.add_argument("file", type=Path, help="a file `audit export` wrote")
    v.add_argument(
        "--trusted-keys",
        type=Path,
        metavar="FILE",
        help="the pinned public keys that sign for each service (the export's signed head,"
        " checkpoints, key changes and redaction statements), JSON like TRUSTED_KEYS; default:"
        " $TRUSTED_KEYS, else $TWINAID_DATA_DIR/keys/trusted_keys.json when it exists. Without"
        " them a redacted line is not accepted",
    )
    v.add_argument(
        "--filtered",
        action="store_true",
        help="an export without header and trailer (written before them) was cut with a"
        " selection: positions missing between its lines are then a warning, not a failure",
    )
    v.add_argument(
        "--against-live",
        action="store_true",
        help="also ask the service's feed (its URL and auditor key as for `audit export`)"
        " whether its log has the export's head and what was appended after it: an event"
        " recorded before the export was made and missing from it means its tail was cut",
    )
    cli_support.add_url_option(v)
    v.add_argument("--key", help="an auditor key, for --against-live")


def _feeds(given: list[str], config: cli_support.Config) -> dict[str, str]:
    feeds = {s: config.url(s) for s in SERVICES}
    for item in given:
        service, _, url = item.partition("=")
        if service not in SERVICES or not url:
            raise cli_support.Failed(
                f"--url wants SERVICE=URL with SERVICE one of {', '.join(SERVICES)}, got {item!r}",
                code=2,
            )
        feeds[service] = url.rstrip("/")
    return feeds


async def feed_head(client: httpx.AsyncClient, url: str, *, key: str) -> int:
    """The last position of a service's feed, found with one-event pages: doubling, then
    halving (about 2 log2 n requests), for a progress bar's total."""

    async def beyond(after: int) -> bool:
        response = await client.get(
            f"{url}/v1/events",
            params={"after": after, "limit": 1},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        response.raise_for_status()
        return bool(response.json()["events"])

    if not await beyond(0):
        return 0
    low, high = 0, 1024  # an event lies beyond low; none beyond high (once found)
    while await beyond(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if await beyond(middle) else (low, middle)
    return high


async def counted(
    events: AsyncIterator[RecordedEvent], shown: Callable[[int], None], *, every: int = 200
) -> AsyncIterator[RecordedEvent]:
    """`events`, telling `shown` how many went by (every `every` and at the end)."""
    n = 0
    async for event in events:
        yield event
        n += 1
        if n % every == 0:
            shown(n)
    shown(n)


def pinned_keys(given: Path | None, env: Mapping[str, str]) -> dict[str, list[str]]:
    """The pins of --trusted-keys FILE, else of $TRUSTED_KEYS, else of the file `make run`
    writes on this machine ($TWINAID_DATA_DIR/keys/trusted_keys.json, if there), else none;
    SystemExit naming what is wrong with them."""
    if given is None and not env.get("TRUSTED_KEYS", "").strip():
        local = Path(env.get("TWINAID_DATA_DIR", ".data")) / "keys" / "trusted_keys.json"
        given = local if local.is_file() else None
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


async def _run(
    args: argparse.Namespace, databases: Mapping[str, str], scratch_server: str
) -> tuple[int, Any]:
    if args.action == "verify-export":
        pins = pinned_keys(args.trusted_keys, os.environ)
        try:
            result = export.verify_export(
                args.file,
                trusted=keys.KeyRing.pinned(pins) if pins else None,
                filtered=args.filtered,
            )
        except export.Unreadable as exc:
            raise cli_support.Failed(f"{args.file} is not an export: {exc}", code=2) from None
        if args.against_live:
            await _against_live(args, result)
        return (0 if result["intact"] else 1), result
    config = cli_support.config_of(args)
    feeds = _feeds(getattr(args, "url", []), config)
    key = config.key(args.key, audit=True)
    if not key:
        raise cli_support.Failed(
            "an auditor key is needed: --key, $TWINAID_AUDIT_KEY, $TWINAID_API_KEY or"
            " audit_key in the config file"
        )
    async with httpx.AsyncClient() as client:
        if args.action == "trace":
            return await _trace(args, client, feeds, key)
        if args.action == "export":
            return await _export(args, client, feeds[args.service], key)
        held = _held_checkpoints(args.checkpoints)
        pins = pinned_keys(args.trusted_keys, os.environ)
        reports = []
        with cli_support.bars() as bars:
            for service in args.service or SERVICES:
                total = (
                    await feed_head(client, feeds[service], key=key)
                    if bars.shown and args.source == "feed"
                    else None
                )
                shown = bars.task(f"replaying {service}", total=total)
                events = _source(args, client, feeds[service], service, key)
                mine = [c for c in held if c.get("service") == service]
                report, scratch = await replay.replay(
                    service,
                    events,
                    scratch_server=scratch_server,
                    held_checkpoints=mine,
                    keys=keys.KeyRing.pinned(pins),
                    progress=shown,
                )
                shown(report.events)
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
                        events_of=lambda upstream: _source(
                            args, client, feeds[upstream], upstream, key
                        ),
                        pins=pins,
                    )
                    report.copies = crossed.rows
                    report.differences += crossed.differences
                reports.append(report)
        ok = all(r.verdict and r.verdict.intact and not r.differences for r in reports)
        return (0 if ok else 1), (
            [r.as_dict() for r in reports]
            if cli_support.wants_json(args)
            else _table(reports, args.action)
        )


async def _against_live(args: argparse.Namespace, verdict: dict[str, Any]) -> None:
    """Compare an intact export's head with the service's live log: the event at the head must
    have the head's hash; an event after it recorded before the export was made (its header's
    exported_at, less a minute for clocks) was left out, so the tail was cut. Events recorded
    since are a warning (`live` says what was found)."""
    service, head = verdict["service"], verdict["head_position"]
    if not verdict["intact"] or service not in SERVICES or not head:
        verdict["live"] = None
        return
    config = cli_support.config_of(args)
    url = _feeds(getattr(args, "url", None) or [], config)[service]
    key = config.key(args.key, audit=True)
    if not key:
        raise cli_support.Failed("--against-live needs an auditor key: --key, $TWINAID_AUDIT_KEY")
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{url}/v1/events",
                params={"after": head - 1, "limit": 2},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        response.raise_for_status()
        events = response.json()["events"]
        at = next((e for e in events if e["position"] == head), None)
        after = next((e for e in events if e["position"] > head), None)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise cli_support.Failed(
            f"--against-live: the live {service} at {url} could not be asked for its head: {exc}",
            code=2,
        ) from None
    made = export.instant(verdict.get("exported_at"))
    verdict["live"] = {
        "url": url,
        "has_head": at is not None and at.get("hash") == verdict["head_hash"],
        "next_position": after["position"] if after else None,
        "next_recorded_at": after.get("recorded_at") if after else None,
    }
    problem = None
    if not verdict["live"]["has_head"]:
        problem = (
            f"the live log of {service} does not hold the export's head (position {head},"
            f" hash {verdict['head_hash']}): the export is not of this log"
        )
    elif after is not None:
        recorded = export.instant(after.get("recorded_at"))
        if made is not None and recorded is not None and recorded < made - export.SKEW:
            problem = (
                f"the live log's position {after['position']} was recorded at"
                f" {recorded.isoformat()}, before the export was made ({made.isoformat()}),"
                " and is not in it: its tail was cut"
            )
        else:
            verdict["warnings"].append(
                f"the live log of {service} has events after the export's head {head}"
                f" (position {after['position']} recorded at {after.get('recorded_at')}):"
                " appended since the export was made, or its tail was cut"
            )
    if problem is not None:
        verdict.update(
            intact=False,
            complete=False,
            complete_as_of=None,
            line=None,
            position=head,
            problem=problem,
        )


def _held_checkpoints(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    try:
        held = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise cli_support.Failed(f"the checkpoints in {path} are not JSON: {exc}") from None
    if not isinstance(held, list) or not all(isinstance(c, dict) for c in held):
        raise cli_support.Failed(f"the checkpoints in {path} are not a JSON list of objects")
    return held


async def _trace(
    args: argparse.Namespace, client: httpx.AsyncClient, feeds: Mapping[str, str], key: str
) -> tuple[int, Any]:
    chosen = {s: u for s, u in feeds.items() if not args.service or s in args.service}
    steps = await trace.trace(client, chosen, key=key, target=args.target)
    if not steps:
        print(
            f"twinaid: audit trace: {args.target} not found in the history of {', '.join(chosen)}",
            file=sys.stderr,
        )
        return 1, ([] if cli_support.wants_json(args) else None)
    return 0, ([s.as_dict() for s in steps] if cli_support.wants_json(args) else trace.table(steps))


async def _export(
    args: argparse.Namespace, client: httpx.AsyncClient, url: str, key: str
) -> tuple[int, Any]:
    where = Selection(
        stream_type=args.stream_type,
        event_type=args.event_type,
        organisation=args.organisation,
        correlation_id=args.correlation_id,
    )
    fmt = args.format or ("csv" if args.file.suffix == ".csv" else "jsonl")
    trailer: dict[str, Any] = {}
    with cli_support.bars() as bars:
        total = await feed_head(client, url, key=key) if bars.shown else None
        shown = bars.task(f"exporting {args.service}", total=total)
        with args.file.open("w", newline="") as out:

            async def signed_head(position: int) -> dict[str, Any] | None:
                # the feed signs its page's last event: a page of one, the head
                response = await client.get(
                    f"{url}/v1/events",
                    params={"after": position - 1, "limit": 1},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                response.raise_for_status()
                page = response.json()
                head = page.get("signed_head") if isinstance(page, dict) else None
                return head if isinstance(head, dict) else None

            n = await export.export(
                counted(sources.from_feed(client, url, key=key), shown),
                where,
                fmt=fmt,
                out=out,
                service=args.service,
                signed_head=signed_head,
                summary=trailer,
            )
    result = {"exported": n, "file": str(args.file), "format": fmt, "sha256": trailer["sha256"]}
    if cli_support.wants_json(args):
        return 0, result
    return 0, (
        f"{n} events of {args.service} exported to {args.file} ({fmt});"
        f" its digest (verify-export shows it): sha256 {trailer['sha256']}"
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
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    url: str,
    service: str,
    key: str | None = None,
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
    return sources.from_feed(client, url, key=key or args.key)


def _table(reports: list[replay.Replay], action: str) -> str:
    lines = [f"{'service':<10} {'events':>9} {'events/s':>9}  chain"]
    for r in reports:
        v = r.verdict
        status = (
            f"intact up to {v.head_position}, head {v.head_hash.hex()},"
            f" {v.checkpoints_checked} signed checkpoints"
            + (f", {v.redactions_checked} redacted events" if v.redactions_checked else "")
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
    if output is not None:
        print(
            json.dumps(output, indent=2, default=str, ensure_ascii=False)
            if cli_support.wants_json(args) or not isinstance(output, str)
            else output
        )
    return code
