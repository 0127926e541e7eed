"""The `twinaid` command: API keys, rebuilds, audits, backups, migrations, exports and personal
data (privacy).

Settings come from a flag, else an environment variable, else the config file (--config FILE,
$TWINAID_CONFIG, ~/.config/twinaid/config.toml), else the dev stack's defaults:
  APIs     --url, TWINAID_REGISTRY_URL / _PLEDGES_URL / _SHIPMENTS_URL, TWINAID_PORT_BASE
           (service n on base + n), [urls] or port_base in the file; default ports 8101-8103
  API key  --key, TWINAID_API_KEY (audit: TWINAID_AUDIT_KEY first), api_key / audit_key
  database --database SERVICE=URL, DATABASE_URL, database_url; else the dev stack's embedded
           PostgreSQL if .data/pg (TWINAID_DATA_DIR) holds one, else
           postgresql://postgres@127.0.0.1:5432/postgres, each service's database being
           twinaid_<service> on that server
`twinaid config` shows what a run would use and where each value came from. Every command
answers --json; errors are one line on standard error (--debug or TWINAID_DEBUG=1: the
traceback). Progress bars go to standard error, on a terminal only (TWINAID_PROGRESS=0|1).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from services import (
    cli_databases,
    cli_errors,
    cli_support,
    exports_command,
    keys_command,
    migrate_command,
    privacy_command,
    privacy_migrate_command,
)
from services.audit import command as audit_command
from services.cli_support import Failed
from services.ops import command as ops_command
from services.pledges import events as pledges_events
from services.registry import events as registry_events
from services.shipments import events as shipments_events
from shared import contracts
from shared import db as dbmod
from shared import projections as proj
from shared.consumer import ConsumerRunner
from shared.metrics import Metrics
from shared.settings import SERVICES, Settings, topic_for


def version() -> str:
    try:
        return importlib.metadata.version("twinaid")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


async def rebuild(service: str, url: str) -> tuple[int, dict[str, int]]:
    """Replay the log into empty read models; returns (events replayed, rows per table).
    A progress bar on a terminal (cli_support.bars)."""
    projections = cli_databases.projections_of(service)
    async with cli_databases.connected(service, url) as conn:
        total = int(await conn.fetchval("SELECT count(*) FROM events"))
        with cli_support.bars() as bars:
            shown = bars.task(f"rebuilding {service}", total=total)
            replayed = await proj.rebuild(conn, projections, shown)
            shown(replayed)
        counts = {
            table: int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))
            for p in projections
            for table in p.tables
        }
    return replayed, counts


async def catch_up(
    service: str, url: str, upstreams: Sequence[str], config: cli_support.Config
) -> dict[str, int]:
    """Apply, from each upstream's HTTP feed, every event this service's consumers have not
    applied. UPSTREAM_FEEDS and FEED_API_KEY come from the environment, as for the worker;
    without them, the configured API URLs and key (cli_support.Config)."""
    subscriptions = importlib.import_module(f"services.{service}.subscriptions")
    settings = Settings(database_url=url)
    if not settings.upstream_feeds:
        settings = settings.model_copy(update={"upstream_feeds": dict(config.urls)})
    if not settings.feed_api_key and config.api_key:
        settings = settings.model_copy(update={"feed_api_key": config.api_key})
    db = dbmod.Database(url, max_size=2)
    await db.open()
    try:
        async with httpx.AsyncClient() as http:
            runner = ConsumerRunner(
                service=service,
                settings=settings,
                db=db,
                metrics=Metrics(service),
                handlers=subscriptions.HANDLERS,
                http=http,
            )
            return {u: await runner.catch_up(u) for u in upstreams or list(runner.handlers)}
    finally:
        await db.close()


def parser() -> argparse.ArgumentParser:
    p = cli_support.Parser(
        prog="twinaid", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"twinaid {version()}")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML config file (default: $TWINAID_CONFIG, else ~/.config/twinaid/config.toml)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="machine-readable JSON on standard output, for every command",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (also TWINAID_DEBUG=1)",
    )
    p.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a service database elsewhere than twinaid_<service> on the server",
    )
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of")
    keys_command.register(commands)
    c = commands.add_parser("contracts", help="write every event type's JSON Schema document")
    c.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write into DIR/<service>/ (default: each service's schemas/ folder in the source)",
    )
    commands.add_parser(
        "config", help="show the settings a run uses (URLs, keys, database) and where each is from"
    )
    audit_command.register(commands)
    ops_command.register(commands)
    migrate_command.register(commands)
    exports_command.register(commands)
    privacy_command.register(commands)
    cu = commands.add_parser(
        "catch-up", help="apply what a service's consumers missed, from the upstream feeds"
    )
    cu.add_argument(
        "service", choices=[s for s in SERVICES if s != "registry"], help="the catching up one"
    )
    cu.add_argument(
        "--upstream",
        action="append",
        default=[],
        choices=SERVICES,
        help="only from these upstreams (default: every one it consumes)",
    )
    rb = commands.add_parser("rebuild", help="empty a service's read models and replay its log")
    rb.add_argument("service", choices=SERVICES, help="whose read models")
    for leaf in cli_support.leaves(p):
        cli_support.common_options(leaf)
    return p


CONTRACTS: dict[str, Mapping[str, type[BaseModel]]] = {
    "registry": registry_events.SCHEMAS,
    "pledges": pledges_events.SCHEMAS,
    "shipments": shipments_events.SCHEMAS,
}


PREVIOUS: dict[str, Mapping[tuple[str, int], type[BaseModel]]] = {
    "registry": registry_events.PREVIOUS,
    "pledges": pledges_events.PREVIOUS,
    "shipments": shipments_events.PREVIOUS,
}


def contract_folder(service: str) -> Path:
    return Path(__file__).parent / service / "schemas"


def write_contracts(out: Path | None = None) -> list[Path]:
    written = []
    for service, schemas in CONTRACTS.items():
        docs = contracts.documents(schemas, topic=topic_for(service), previous=PREVIOUS[service])
        written += contracts.write(out / service if out else contract_folder(service), docs)
    return written


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(exports_command.spelled_as_subcommand(given))
    warnings.filterwarnings("ignore", module="platformdirs")
    debug = bool(getattr(args, "debug", False)) or os.environ.get("TWINAID_DEBUG") == "1"
    return cli_errors.guarded(lambda: run(args), debug=debug)


def run(args: argparse.Namespace) -> int:
    """The command `args` names; Failed (or an exception cli_errors.describe knows) on an
    anticipated failure."""
    config = cli_support.load(os.environ, args.config)
    args.settings = config
    if args.command == "config":
        cli_support.emit(args, config.as_dict(), lambda: _config_text(config))
        return 0
    if args.command == "contracts":
        paths = write_contracts(args.out)
        cli_support.emit(
            args, {"written": [str(path) for path in paths]}, "\n".join(map(str, paths))
        )
        return 0
    if args.command == "audit" and args.action == "verify-export":
        return audit_command.run(args, databases={}, scratch_server="")
    if args.command == "keys" and args.action == "signing-pin":
        return keys_command.signing_pin(args)
    if args.command == "export":
        return exports_command.run(args)
    if args.command == "privacy" and args.action != "migrate":
        return privacy_command.run(args)
    urls = cli_databases.database_urls(args.database, os.environ, config.database_url)
    try:
        return _on_databases(args, config, urls)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise Failed(cli_errors.database_unreachable(exc, list(urls.values()))) from exc


def _on_databases(
    args: argparse.Namespace, config: cli_support.Config, urls: Mapping[str, str]
) -> int:
    """The commands that open the services' databases."""
    if args.command == "audit":
        return audit_command.run(
            args,
            databases=urls,
            scratch_server=cli_databases.server_url(os.environ, config.database_url),
        )
    if args.command in ("backup", "restore"):
        return ops_command.run(args, urls=urls, env=os.environ)
    if args.command == "migrate":
        return migrate_command.run(args, databases=urls)
    if args.command == "privacy":
        return privacy_migrate_command.run(args, databases=urls)
    if args.command == "catch-up":
        applied = asyncio.run(catch_up(args.service, urls[args.service], args.upstream, config))
        cli_support.emit(
            args,
            {"service": args.service, "applied": applied},
            "\n".join(
                f"{args.service}: {n} events applied from {upstream}'s feed"
                for upstream, n in applied.items()
            ),
        )
    elif args.command == "rebuild":
        replayed, counts = asyncio.run(rebuild(args.service, urls[args.service]))
        tables = ", ".join(f"{t}: {n} rows" for t, n in counts.items()) or "no read models"
        cli_support.emit(
            args,
            {"service": args.service, "events_replayed": replayed, "rows": counts},
            f"rebuilt {args.service}: {replayed} events replayed ({tables})",
        )
    else:
        return keys_command.run(args, urls)
    return 0


def _config_text(config: cli_support.Config) -> str:
    shown: dict[str, Any] = config.as_dict()
    origin = config.origin
    lines = [f"config file   {shown['file'] or '(none)'}"]
    for service, url in config.urls.items():
        lines.append(f"{service + ' API':<13} {url}  ({origin[f'{service}_url']})")
    for name in ("api_key", "audit_key", "database_url"):
        value = shown[name]
        lines.append(
            f"{name:<13} {value or '(not set)'}" + (f"  ({origin[name]})" if value else "")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
