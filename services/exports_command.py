"""`twinaid export iati|epcis`: fetch a standard's document from a service's API and write it.

    twinaid export iati --organisation kharkiv --out kharkiv-iati.xml
    twinaid export iati --partnership lille-kharkiv-twinning
    twinaid export epcis --convoy lille-kharkiv-2022-03 --out convoy.jsonld

The pledges API answers IATI 2.03 activity XML (GET /v1/exports/iati), the shipments API EPCIS
2.0 JSON-LD for a convoy (GET /v1/convoys/{convoy_id}/epcis). The URL comes from --url, else
$TWINAID_PLEDGES_URL / $TWINAID_SHIPMENTS_URL, $TWINAID_PORT_BASE, the config file, else the dev
stack's; the key from --key, else $TWINAID_KEY, $TWINAID_API_KEY, the config file
(services/cli_support.py). Without --out the document goes to standard output; with --json, a
summary (and the document itself without --out). Any failure is one line on standard error and
exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from services import cli_errors, cli_support

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
    common.add_argument(
        "--url",
        help="the service's API (default: $TWINAID_<SERVICE>_URL, $TWINAID_PORT_BASE, the config"
        " file, else the dev stack's port)",
    )
    common.add_argument(
        "--key", help="an API key (default: $TWINAID_KEY, $TWINAID_API_KEY, the config file)"
    )
    common.add_argument("--out", type=Path, metavar="FILE", help="default: standard output")
    iati = formats.add_parser(
        "iati",
        parents=[common],
        help="IATI 2.03 activities of an organisation or a partnership (pledges API)",
    )
    which = iati.add_mutually_exclusive_group(required=True)
    which.add_argument("--organisation", metavar="ID", help="the activities of one organisation")
    which.add_argument("--partnership", metavar="ID", help="the activities of one partnership")
    epcis = formats.add_parser(
        "epcis", parents=[common], help="EPCIS 2.0 events of a convoy (shipments API)"
    )
    epcis.add_argument("--convoy", metavar="ID", required=True, help="the convoy's id")


def request(args: argparse.Namespace, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The URL to GET and its query parameters."""
    service = SERVICE[args.format]
    base = cli_support.config_of(args, env).url(service, args.url)
    if args.format == "iati":
        if args.organisation is not None:
            return f"{base}/v1/exports/iati", {"organisation": args.organisation}
        return f"{base}/v1/exports/iati", {"partnership": args.partnership}
    return f"{base}/v1/convoys/{quote(args.convoy, safe='')}/epcis", {}


async def fetch(
    args: argparse.Namespace,
    *,
    env: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bytes:
    """The document, or ExportFailed. `transport` lets tests call an app in process."""
    env = dict(os.environ) if env is None else env
    key = args.key or env.get(cli_support.EXPORT_KEY_ENV) or cli_support.config_of(args, env).key()
    if not key:
        raise ExportFailed(
            "no API key: pass --key, set TWINAID_KEY or TWINAID_API_KEY, or api_key in the"
            " config file"
        )
    url, params = request(args, env)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            response = await client.get(
                url, params=params, headers={"Authorization": f"Bearer {key}"}
            )
    except httpx.HTTPError as exc:
        raise ExportFailed(cli_errors.describe(exc)) from exc
    if response.status_code != 200:
        raise ExportFailed(cli_errors.describe_response(response))
    return response.content


def write(document: bytes, out: Path | None, *, summary: dict[str, Any] | None = None) -> None:
    """The document to `out` (standard output if None); with `summary` (--json), that summary
    on standard output, holding the document itself when it has no file."""
    if out is not None:
        try:
            out.write_bytes(document)
        except OSError as exc:
            raise ExportFailed(f"cannot write {out}: {exc.strerror or exc}") from exc
    if summary is not None:
        shown = {**summary, "file": str(out) if out else None, "bytes": len(document)}
        if out is None:
            text = document.decode()
            shown["document"] = json.loads(text) if summary["format"] == "epcis" else text
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    elif out is None:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    else:
        print(f"{out}: {len(document)} bytes", file=sys.stderr)


async def export(
    args: argparse.Namespace,
    *,
    env: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    summary = None
    if cli_support.wants_json(args):
        url, params = request(args, dict(os.environ) if env is None else env)
        summary = {"format": args.format, "url": url, "params": params}
    try:
        write(await fetch(args, env=env, transport=transport), args.out, summary=summary)
    except ExportFailed as exc:
        print(f"twinaid: export {args.format}: {exc}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(export(args))
