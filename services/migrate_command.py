"""`twinaid migrate [--service S] [--list]`: apply each service's pending schema migrations, or
list them with when each was applied (shared/migrations.py). The services apply what is pending
at start-up too; this runs it ahead of a deployment, under the same lock."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from typing import Any

from services import cli_support
from shared import migrations
from shared.settings import SERVICES


def register(commands: Any) -> None:
    m = commands.add_parser(
        "migrate",
        help="apply the services' pending schema migrations (or --list them)",
        description=__doc__,
    )
    cli_support.add_service_option(m)
    m.add_argument(
        "--list",
        action="store_true",
        help="list every migration, applied (when) or pending; apply nothing",
    )


async def _run(args: argparse.Namespace, databases: Mapping[str, str]) -> dict[str, Any]:
    """Per service: its migrations' statuses (--list) or the ones applied now."""
    done: dict[str, Any] = {}
    for service in args.service or SERVICES:
        url = databases[service]
        if args.list:
            done[service] = await migrations.status_url(url, service)
        else:
            done[service] = await migrations.migrate_url(url, service)
    return done


def _text(args: argparse.Namespace, done: Mapping[str, Any]) -> str:
    lines = []
    for service, result in done.items():
        if args.list:
            lines.append(f"{service}:")
            lines += [f"  {line}" for line in migrations.render(result)]
        else:
            lines.append(
                f"{service}: applied {', '.join(result)}"
                if result
                else f"{service}: up to date, nothing to apply"
            )
    return "\n".join(lines)


def _json(args: argparse.Namespace, done: Mapping[str, Any]) -> dict[str, Any]:
    if args.list:
        return {
            service: [{"id": s.id, "applied_at": s.applied_at} for s in statuses]
            for service, statuses in done.items()
        }
    return {service: {"applied": list(applied)} for service, applied in done.items()}


def run(args: argparse.Namespace, *, databases: Mapping[str, str]) -> int:
    """The command, on the databases `twinaid` resolved (DATABASE_URL, --database)."""
    try:
        done = asyncio.run(_run(args, databases))
    except migrations.MigrationFailed as exc:
        raise cli_support.Failed(str(exc)) from None
    cli_support.emit(args, _json(args, done), lambda: _text(args, done))
    return 0
