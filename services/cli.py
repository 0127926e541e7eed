"""The `twinaid` command: API keys and read-model rebuilds, straight on the services' databases.

A composition root, not part of a service: it may import every service.

The server is DATABASE_URL; without it, the dev stack's embedded PostgreSQL if `.data/pg`
(TWINAID_DATA_DIR) holds one, else postgresql://postgres@127.0.0.1:5432/postgres. Each service's
database is `twinaid_<service>` on it, unless `--database SERVICE=URL` names another.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from pydantic import BaseModel

from services import exports_command, migrate_command
from services.audit import command as audit_command
from services.audit import signing_keys
from services.ops import command as ops_command
from services.pledges import events as pledges_events
from services.registry import events as registry_events
from services.registry import projections as registry_projections
from services.shipments import events as shipments_events
from shared import auth, contracts, signing
from shared import db as dbmod
from shared import projections as proj
from shared.consumer import ConsumerRunner
from shared.infra import start_embedded_postgres
from shared.metrics import Metrics
from shared.settings import SERVICES, Settings, database_for, topic_for

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url(env: Mapping[str, str]) -> str:
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    embedded = Path(env.get("TWINAID_DATA_DIR", ".data")) / "pg"
    if (embedded / "PG_VERSION").exists():
        return start_embedded_postgres(embedded)
    return DEFAULT_SERVER


def database_urls(overrides: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    """Every service's database URL; raises SystemExit on a malformed override."""
    given: dict[str, str] = {}
    for item in overrides:
        service, sep, url = item.partition("=")
        if not sep or service not in SERVICES or not url:
            raise SystemExit(
                f"twinaid: --database wants SERVICE=URL with SERVICE one of "
                f"{', '.join(SERVICES)}; got {item!r}"
            )
        given[service] = url
    if len(given) < len(SERVICES):
        server = server_url(env)
        for service in SERVICES:
            given.setdefault(service, dbmod.with_database(server, database_for(service)))
    return given


def projections_of(service: str) -> tuple[proj.Projection, ...]:
    if service == "registry":
        return tuple(registry_projections.ALL)
    module = f"services.{service}.projections"
    if importlib.util.find_spec(module) is None:
        return ()
    return tuple(getattr(importlib.import_module(module), "ALL", ()))


async def _connect(service: str, url: str) -> asyncpg.Connection:
    """A connection to a service database with its schema applied (the services do the same)."""
    await dbmod.ensure_database(url)
    conn = await asyncpg.connect(url)
    await dbmod.migrate(
        conn, service, dbmod.schema_text("shared"), dbmod.schema_text(f"services.{service}")
    )
    return conn


def parse_roles(text: str) -> list[auth.Role]:
    names = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [n for n in names if n not in {r.value for r in auth.Role}]
    if not names or unknown:
        raise SystemExit(
            f"twinaid: unknown role(s) {', '.join(unknown) or '(none given)'}; "
            f"roles are {', '.join(r.value for r in auth.Role)}"
        )
    return [auth.Role(n) for n in names]


async def keys_issue(
    urls: Mapping[str, str], *, organisation: str, roles: list[auth.Role], label: str
) -> auth.IssuedKey:
    """Register one new key in every service database."""
    _, token, _ = auth.new_key()
    issued: auth.IssuedKey | None = None
    for service, url in urls.items():
        conn = await _connect(service, url)
        try:
            issued = await auth.issue(
                conn, organisation=organisation, roles=roles, label=label, token=token
            )
        finally:
            await conn.close()
    assert issued is not None
    return issued


async def keys_revoke(urls: Mapping[str, str], *, key_id: str) -> list[str]:
    """Revoke a key everywhere; returns the services where it was active."""
    revoked = []
    for service, url in urls.items():
        conn = await _connect(service, url)
        try:
            if await auth.revoke(conn, key_id=key_id):
                revoked.append(service)
        finally:
            await conn.close()
    return revoked


async def keys_list(urls: Mapping[str, str]) -> list[dict[str, object]]:
    """Every key (no secrets), with the services that know it."""
    keys: dict[str, dict[str, object]] = {}
    for service, url in urls.items():
        conn = await _connect(service, url)
        try:
            rows = await conn.fetch(
                "SELECT key_id, organisation, roles, label, created_at, revoked_at"
                " FROM api_keys ORDER BY created_at, key_id"
            )
        finally:
            await conn.close()
        for row in rows:
            entry = keys.setdefault(row["key_id"], {**dict(row), "services": []})
            services = entry["services"]
            assert isinstance(services, list)
            services.append(service)
    return list(keys.values())


async def rotate_signing(service: str, url: str, key_file: Path) -> signing_keys.Rotation:
    conn = await _connect(service, url)
    try:
        return await signing_keys.rotate(
            conn, service=service, key_file=key_file, now=datetime.now(UTC)
        )
    finally:
        await conn.close()


async def rebuild(service: str, url: str) -> tuple[int, dict[str, int]]:
    """Replay the log into empty read models; returns (events replayed, rows per table)."""
    projections = projections_of(service)
    conn = await _connect(service, url)
    try:
        replayed = await proj.rebuild(conn, projections)
        counts = {
            table: int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))
            for p in projections
            for table in p.tables
        }
    finally:
        await conn.close()
    return replayed, counts


async def catch_up(service: str, url: str, upstreams: Sequence[str]) -> dict[str, int]:
    """Apply, from each upstream's HTTP feed, every event this service's consumers have not
    applied (UPSTREAM_FEEDS and FEED_API_KEY come from the environment, as for the worker)."""
    subscriptions = importlib.import_module(f"services.{service}.subscriptions")
    settings = Settings(database_url=url)
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


def _print_keys(keys: list[dict[str, object]]) -> None:
    print(f"{'key id':<18} {'organisation':<20} {'roles':<26} {'label':<10} {'status':<8} services")
    for k in keys:
        roles = ",".join(k["roles"]) if isinstance(k["roles"], list) else ""
        status = "revoked" if k["revoked_at"] else "active"
        services = ",".join(k["services"]) if isinstance(k["services"], list) else ""
        print(
            f"{k['key_id']!s:<18} {k['organisation']!s:<20} {roles:<26} {k['label']!s:<10} "
            f"{status:<8} {services}"
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="twinaid", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a service database elsewhere than twinaid_<service> on the server",
    )
    commands = p.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    issue = keys.add_parser("issue", help="issue a key, valid in every service; prints it once")
    issue.add_argument("--organisation", required=True)
    issue.add_argument(
        "--roles", required=True, help=f"comma-separated: {', '.join(r.value for r in auth.Role)}"
    )
    issue.add_argument("--label", default="")
    revoke = keys.add_parser("revoke", help="revoke a key in every service")
    revoke.add_argument("key_id")
    keys.add_parser("list", help="list keys (never their secrets)")
    rotate = keys.add_parser(
        "rotate-signing",
        help="give a service a new checkpoint signing key, announced in its log signed by the"
        " old one (then restart its worker)",
    )
    pin = keys.add_parser(
        "signing-pin",
        help="print the public key (a TRUSTED_KEYS pin) of a service's signing key file,"
        " creating the key the first time",
    )
    for signing_command in (rotate, pin):
        signing_command.add_argument("service", choices=SERVICES)
        signing_command.add_argument(
            "--key-file",
            type=Path,
            help="the worker's SIGNING_KEY_FILE (default: the dev stack's"
            " $TWINAID_DATA_DIR/keys/SERVICE.ed25519)",
        )
    commands.add_parser("contracts", help="write every event type's JSON Schema document")
    audit_command.register(commands)
    ops_command.register(commands)
    migrate_command.register(commands)
    exports_command.register(commands)
    cu = commands.add_parser(
        "catch-up", help="apply what a service's consumers missed, from the upstream feeds"
    )
    cu.add_argument("service", choices=[s for s in SERVICES if s != "registry"])
    cu.add_argument("--upstream", action="append", default=[], choices=SERVICES)
    rb = commands.add_parser("rebuild", help="empty a service's read models and replay its log")
    rb.add_argument("service", choices=SERVICES)
    return p


CONTRACTS: dict[str, Mapping[str, type[BaseModel]]] = {
    "registry": registry_events.SCHEMAS,
    "pledges": pledges_events.SCHEMAS,
    "shipments": shipments_events.SCHEMAS,
}


def contract_folder(service: str) -> Path:
    return Path(__file__).parent / service / "schemas"


def write_contracts() -> list[Path]:
    written = []
    for service, schemas in CONTRACTS.items():
        docs = contracts.documents(schemas, topic=topic_for(service))
        written += contracts.write(contract_folder(service), docs)
    return written


def _key_file(args: argparse.Namespace) -> Path:
    data_dir = Path(os.environ.get("TWINAID_DATA_DIR", ".data"))
    given: Path | None = args.key_file
    return given or data_dir / "keys" / f"{args.service}.ed25519"


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(exports_command.spelled_as_subcommand(given))
    warnings.filterwarnings("ignore", module="platformdirs")
    if args.command == "contracts":
        for path in write_contracts():
            print(path)
        return 0
    if args.command == "audit" and args.action == "verify-export":
        return audit_command.run(args, databases={}, scratch_server="")
    if args.command == "keys" and args.action == "signing-pin":
        try:
            print(signing.Signer.from_file(_key_file(args)).public_key)
        except (OSError, ValueError) as exc:
            print(f"twinaid: no usable signing key in {_key_file(args)}: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "export":
        return exports_command.run(args)
    urls = database_urls(args.database, os.environ)
    if args.command == "audit":
        return audit_command.run(args, databases=urls, scratch_server=server_url(os.environ))
    if args.command in ("backup", "restore"):
        return ops_command.run(args, urls=urls, env=os.environ)
    if args.command == "migrate":
        return migrate_command.run(args, databases=urls)
    if args.command == "catch-up":
        applied = asyncio.run(catch_up(args.service, urls[args.service], args.upstream))
        for upstream, n in applied.items():
            print(f"{args.service}: {n} events applied from {upstream}'s feed")
    elif args.command == "rebuild":
        replayed, counts = asyncio.run(rebuild(args.service, urls[args.service]))
        tables = ", ".join(f"{t}: {n} rows" for t, n in counts.items()) or "no read models"
        print(f"rebuilt {args.service}: {replayed} events replayed ({tables})")
    elif args.action == "rotate-signing":
        key_file = _key_file(args)
        try:
            done = asyncio.run(rotate_signing(args.service, urls[args.service], key_file))
        except signing_keys.RotationRefused as exc:
            print(f"twinaid: {exc}", file=sys.stderr)
            return 1
        print(
            f"{done.service}: signing key {done.previous_public_key} replaced by"
            f" {done.public_key} in {done.key_file} (the old one kept in"
            f" {done.previous_key_file}); the change is in {done.service}'s log, signed by"
            f" the old key. Restart {done.service}'s worker to sign with the new key."
        )
    elif args.action == "issue":
        roles = parse_roles(args.roles)
        issued = asyncio.run(
            keys_issue(urls, organisation=args.organisation, roles=roles, label=args.label)
        )
        print(
            f"key {issued.key_id} for {args.organisation} "
            f"({', '.join(r.value for r in roles)}) registered in {', '.join(urls)}; "
            "it is shown once, store it now:",
            file=sys.stderr,
        )
        print(issued.token)
    elif args.action == "revoke":
        revoked = asyncio.run(keys_revoke(urls, key_id=args.key_id))
        if not revoked:
            print(f"twinaid: no active key {args.key_id}", file=sys.stderr)
            return 1
        print(f"key {args.key_id} revoked in {', '.join(revoked)}")
    else:
        _print_keys(asyncio.run(keys_list(urls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
