"""`twinaid migrate [--service S] [--list]`: apply each service's pending schema migrations, or
list them with when each was applied (shared/migrations.py). The services apply what is pending
at start-up too; this runs it ahead of a deployment, under the same lock."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from shared import migrations
from shared.settings import SERVICES


def register(commands: Any) -> None:
    m = commands.add_parser(
        "migrate",
        help="apply the services' pending schema migrations (or --list them)",
        description=__doc__,
    )
    m.add_argument(
        "--service",
        action="append",
        default=[],
        choices=SERVICES,
        help="only these services (default: all)",
    )
    m.add_argument(
        "--list",
        action="store_true",
        help="list every migration, applied (when) or pending; apply nothing",
    )


async def _run(args: argparse.Namespace, databases: Mapping[str, str]) -> list[str]:
    lines = []
    for service in args.service or SERVICES:
        url = databases[service]
        if args.list:
            statuses = await migrations.status_url(url, service)
            lines.append(f"{service}:")
            lines += [f"  {line}" for line in migrations.render(statuses)]
        else:
            applied = await migrations.migrate_url(url, service)
            lines.append(
                f"{service}: applied {', '.join(applied)}"
                if applied
                else f"{service}: up to date, nothing to apply"
            )
    return lines


def run(args: argparse.Namespace, *, databases: Mapping[str, str]) -> int:
    """The command, on the databases `twinaid` resolved (DATABASE_URL, --database)."""
    try:
        lines = asyncio.run(_run(args, databases))
    except migrations.MigrationFailed as exc:
        print(f"twinaid: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
