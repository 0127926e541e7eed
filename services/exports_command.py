"""`twinaid export iati|epcis`: fetch a standard's document from a service's API and write it.

    twinaid export iati --organisation kharkiv --out kharkiv-iati.xml
    twinaid export iati --partnership lille-kharkiv-twinning
    twinaid export epcis --convoy lille-kharkiv-2022-03 --out convoy.jsonld

The pledges API answers IATI 2.03 activity XML (GET /v1/exports/iati), the shipments API EPCIS
2.0 JSON-LD for a convoy (GET /v1/convoys/{convoy_id}/epcis). The URL comes from --url, else
$TWINAID_PLEDGES_URL / $TWINAID_SHIPMENTS_URL, else the dev stack's; the key from --key, else
$TWINAID_KEY. Without --out the document goes to standard output. Any failure is one line on
standard error and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URLS = {"pledges": "http://127.0.0.1:8102", "shipments": "http://127.0.0.1:8103"}
URL_ENV = {"pledges": "TWINAID_PLEDGES_URL", "shipments": "TWINAID_SHIPMENTS_URL"}
SERVICE = {"iati": "pledges", "epcis": "shipments"}
TIMEOUT = 60.0


class ExportFailed(Exception):
    """Why the export failed, in one line."""


def spelled_as_subcommand(argv: list[str]) -> list[str]:
    """`twinaid export --format iati ...` (or `--format=iati`) as `twinaid export iati ...`:
    both spellings work."""
    if "export" not in argv:
        return argv
    at = argv.index("export") + 1
    if "audit" in argv[: at - 1]:  # `twinaid audit export --format jsonl` is another command
        return argv
    rest = argv[at:]
    for n, word in enumerate(rest):
        if word == "--format" and n + 1 < len(rest):
            return [*argv[:at], rest[n + 1], *rest[:n], *rest[n + 2 :]]
        if word.startswith("--format="):
            return [*argv[:at], word.partition("=")[2], *rest[:n], *rest[n + 1 :]]
    return argv


def register(commands: Any) -> None:
    export = commands.add_parser("export", help="IATI XML or EPCIS JSON-LD from the services")
    formats = export.add_subparsers(dest="format", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the service's API (default: $TWINAID_<SERVICE>_URL)")
    common.add_argument("--key", help="an API key (default: $TWINAID_KEY)")
    common.add_argument("--out", type=Path, metavar="FILE", help="default: standard output")
    iati = formats.add_parser(
        "iati",
        parents=[common],
        help="IATI 2.03 activities of an organisation or a partnership (pledges API)",
    )
    which = iati.add_mutually_exclusive_group(required=True)
    which.add_argument("--organisation", metavar="ID")
    which.add_argument("--partnership", metavar="ID")
    epcis = formats.add_parser(
        "epcis", parents=[common], help="EPCIS 2.0 events of a convoy (shipments API)"
    )
    epcis.add_argument("--convoy", metavar="ID", required=True)


def request(args: argparse.Namespace, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The URL to GET and its query parameters."""
    service = SERVICE[args.format]
    base = (args.url or env.get(URL_ENV[service]) or DEFAULT_URLS[service]).rstrip("/")
    if args.format == "iati":
        if args.organisation is not None:
            return f"{base}/v1/exports/iati", {"organisation": args.organisation}
        return f"{base}/v1/exports/iati", {"partnership": args.partnership}
    return f"{base}/v1/convoys/{quote(args.convoy, safe='')}/epcis", {}


def _problem(response: httpx.Response) -> str:
    """The API's problem (RFC 9457) in one line, or its status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        title = body.get("title") or response.reason_phrase
        return f"{response.status_code} {title}: {body['detail']}"
    return f"{response.status_code} {response.reason_phrase}"


async def fetch(
    args: argparse.Namespace,
    *,
    env: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bytes:
    """The document, or ExportFailed. `transport` lets tests call an app in process."""
    env = dict(os.environ) if env is None else env
    key = args.key or env.get("TWINAID_KEY")
    if not key:
        raise ExportFailed("no API key: pass --key or set TWINAID_KEY")
    url, params = request(args, env)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            response = await client.get(
                url, params=params, headers={"Authorization": f"Bearer {key}"}
            )
    except httpx.HTTPError as exc:
        raise ExportFailed(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ExportFailed(f"{url} answered {_problem(response)}")
    return response.content


def write(document: bytes, out: Path | None) -> None:
    if out is None:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(document)
    except OSError as exc:
        raise ExportFailed(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(f"{out}: {len(document)} bytes", file=sys.stderr)


async def export(
    args: argparse.Namespace,
    *,
    env: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    try:
        write(await fetch(args, env=env, transport=transport), args.out)
    except ExportFailed as exc:
        print(f"twinaid: export {args.format}: {exc}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(export(args))
