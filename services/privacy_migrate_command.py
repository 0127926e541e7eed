"""`twinaid privacy migrate SERVICE`: seal the persons that events written before encryption hold
in clear, a signed, verifiable rewrite of the service's log (shared/privacy_migration.py), on
the database `twinaid` resolved, signed with the service's signing key (--key-file, else
$SIGNING_KEY_FILE, else the dev stack's). The other privacy actions work over the APIs
(services/privacy_command.py, which registers this one's arguments too).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from services import cli_databases, cli_support
from services.cli_support import Failed
from shared import chain, devstack_keys, keys, outbox, privacy_migration, sealer
from shared.settings import Settings


def _signing_key_file(args: argparse.Namespace, env: Mapping[str, str]) -> Path:
    given: Path | None = args.key_file
    return given or devstack_keys.worker_key_file(args.service, env)


async def _migrate(service: str, url: str, key_file: Path) -> privacy_migration.Report:
    # the service's seal_v1 (services/<service>/privacy.py), found by name: the command serves
    # every service
    seal_v1 = importlib.import_module(f"services.{service}.privacy").seal_v1
    settings = Settings(database_url=url, signing_key_file=str(key_file))
    signer = outbox.signer_for(settings)
    pins = keys.KeyRing.pinned(settings.trusted_keys) if settings.trusted_keys else None
    async with cli_databases.connected(service, url) as conn:
        try:
            report = await privacy_migration.migrate(
                conn,
                service=service,
                signer=signer,
                seal_v1=seal_v1,
                now=datetime.now(UTC),
                projections=list(cli_databases.projections_of(service)),
                trusted_keys=pins,
            )
            # the signed statement gets its position now (else at the worker's next sealing):
            # a verify right after already finds it
            while await sealer.seal(conn, limit=5000):
                pass
            return report
        except privacy_migration.Refused as exc:
            verdict: chain.Verdict = exc.verdict
            raise Failed(
                f"privacy migrate: {service}'s log does not verify: {verdict.problem} at"
                f" position {verdict.bad_position}; nothing was rewritten (twinaid audit replay"
                " tells more)"
            ) from None


def run(args: argparse.Namespace, *, databases: Mapping[str, str]) -> int:
    """`privacy migrate SERVICE` on the database `twinaid` resolved, opened with its schema
    applied (cli_databases.connected); the service's read models are rebuilt by the migration."""
    key_file = _signing_key_file(args, os.environ)
    if not key_file.is_file():
        raise Failed(
            f"no signing key {key_file}: the rewrite is signed with {args.service}'s key; give"
            " its file with --key-file or $SIGNING_KEY_FILE"
        )
    report = asyncio.run(_migrate(args.service, databases[args.service], key_file))
    cli_support.emit(args, report.as_dict(), lambda: _migrate_text(report))
    return 0


def _migrate_text(report: privacy_migration.Report) -> str:
    statements = report.statement_event_ids or [str(report.statement_event_id)]
    if not report.rewritten:
        said = (
            f"{report.service}: nothing to rewrite ({report.examined} version-1 events looked"
            " at hold no person in clear)"
        )
    else:
        said = (
            f"{report.service}: {report.rewritten} of {report.examined} version-1 events"
            f" rewritten sealed (positions {_ranges(report.positions)}), recorded in the signed"
            f" {'statements' if len(statements) > 1 else 'statement'} {', '.join(statements)}"
            f" (chain head {report.head_position} before)"
        )
    if report.rebuilt is not None:
        said += f"; read models rebuilt ({report.rebuilt} events replayed)"
    if report.unsealed:
        said += (
            f"; {report.unsealed} version-1 events written meanwhile are not sealed yet:"
            " run it again"
        )
    return said


def _ranges(positions: Sequence[int]) -> str:
    spans: list[list[int]] = []
    for p in sorted(positions):
        if spans and p == spans[-1][1] + 1:
            spans[-1][1] = p
        else:
            spans.append([p, p])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
