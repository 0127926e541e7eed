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
import getpass
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import BaseModel

from services import cli_support, exports_command, migrate_command, privacy_command
from services.audit import command as audit_command
from services.audit import signing_keys
from services.cli_support import Failed
from services.ops import command as ops_command
from services.pledges import events as pledges_events
from services.registry import events as registry_events
from services.registry import projections as registry_projections
from services.registry.domain import api_keys as keys_domain
from services.registry.handlers import api_keys as key_handlers
from services.shipments import events as shipments_events
from shared import api_keys as shared_api_keys
from shared import auth, contracts, errors, notify, signing
from shared import db as dbmod
from shared import projections as proj
from shared.consumer import ConsumerRunner
from shared.events import Metadata
from shared.infra import start_embedded_postgres
from shared.metrics import Metrics
from shared.settings import SERVICES, Settings, database_for, topic_for

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# roles that act for the operator, not for a partner organisation: their keys may name an
# organisation the registry does not hold (the dev stack's "twinaid", "twinaid-audit")
OPERATOR_ROLES = frozenset({auth.Role.REGISTRY_ADMIN, auth.Role.AUDITOR, auth.Role.SERVICE})
# who `twinaid keys issue` and `revoke` name in the registry's key events (with the account)
OPERATOR_ACTOR = "operator"
OPERATOR_ORGANISATION = "twinaid"
DURATION = re.compile(r"^(\d+)([mhdw])$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def version() -> str:
    try:
        return importlib.metadata.version("twinaid")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def server_url(env: Mapping[str, str], configured: str | None = None) -> str:
    """DATABASE_URL, else the config file's database_url, else the dev stack's server."""
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    if configured:
        return configured
    embedded = Path(env.get("TWINAID_DATA_DIR", ".data")) / "pg"
    if (embedded / "PG_VERSION").exists():
        return start_embedded_postgres(embedded)
    return DEFAULT_SERVER


def database_urls(
    overrides: Sequence[str], env: Mapping[str, str], configured: str | None = None
) -> dict[str, str]:
    """Every service's database URL; Failed on a malformed override."""
    given: dict[str, str] = {}
    for item in overrides:
        service, sep, url = item.partition("=")
        if not sep or service not in SERVICES or not url:
            raise Failed(
                f"--database wants SERVICE=URL with SERVICE one of {', '.join(SERVICES)};"
                f" got {item!r}",
                code=2,
            )
        given[service] = url
    if len(given) < len(SERVICES):
        server = server_url(env, configured)
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
        raise Failed(
            f"unknown role(s) {', '.join(unknown) or '(none given)'};"
            f" roles are {', '.join(r.value for r in auth.Role)}",
            code=2,
        )
    return [auth.Role(n) for n in names]


async def check_organisation(registry_url: str, organisation: str, roles: list[auth.Role]) -> None:
    """Failed unless the registry holds `organisation`, or every role is an operator's; the
    message names registered organisations the text is a name or an alias of."""
    if set(roles) <= OPERATOR_ROLES:
        return
    conn = await _connect("registry", registry_url)
    try:
        if await conn.fetchval(
            "SELECT 1 FROM organisations WHERE organisation_id = $1", organisation
        ):
            return
        similar = [
            r["organisation_id"]
            for r in await conn.fetch(
                "SELECT organisation_id FROM organisations"
                " WHERE lower(organisation_id) = lower($1) OR lower(name) = lower($1)"
                " OR EXISTS (SELECT 1 FROM unnest(aliases) a WHERE lower(a) = lower($1))"
                " ORDER BY organisation_id LIMIT 5",
                organisation,
            )
        ]
    finally:
        await conn.close()
    hint = f" (did you mean {' or '.join(similar)}?)" if similar else ""
    raise Failed(
        f"keys issue: no organisation {organisation!r} in the registry{hint}; register it"
        " first (POST /v1/organisations), or give only operator roles"
        f" ({', '.join(sorted(OPERATOR_ROLES))}). Nothing was issued."
    )


def operator() -> keys_domain.Manager:
    """Who changes keys with `twinaid keys`: the operator (a registry administrator, with no
    key of its own), named in the registry's key events by the account running the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return keys_domain.Manager(
        key_id=f"{OPERATOR_ACTOR}:{user}"[:64],
        organisation=OPERATOR_ORGANISATION,
        roles=frozenset({auth.Role.REGISTRY_ADMIN}),
    )


def _metadata(action: str, by: keys_domain.Manager) -> Metadata:
    return Metadata(actor=f"twinaid keys {action} ({by.key_id})", organisation=by.organisation)


async def _in_registry_log(
    url: str, change: Callable[[asyncpg.Connection], Awaitable[dict[str, Any] | None]]
) -> dict[str, Any] | None:
    """`change` in one transaction of the registry's database, which its relay is then woken
    to publish (as the registry's API does after a write)."""
    conn = await _connect("registry", url)
    try:
        async with conn.transaction():
            answer = await change(conn)
        await conn.execute(f"NOTIFY {notify.CHANNEL}")
    finally:
        await conn.close()
    return answer


async def keys_issue(
    urls: Mapping[str, str],
    *,
    organisation: str,
    roles: list[auth.Role],
    label: str,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """Issue a key as the registry's `registry.api-key-issued` event (the operator its actor,
    in the auditable log), once the registry knows the organisation (check_organisation;
    Failed and nothing stored otherwise). The key works at once in every service: its row is
    written into pledges' and shipments' databases too, as their consumers will apply the event
    (which then finds it held with the same secret: nothing more to do). Returns the key as
    the registry answers it, with its `token`."""
    await check_organisation(urls["registry"], organisation, roles)
    now = datetime.now(UTC)
    by = operator()

    async def issue(conn: asyncpg.Connection) -> dict[str, Any]:
        return await key_handlers.issue(
            conn,
            organisation_id=organisation,
            roles=roles,
            label=label,
            expires_at=expires_at,
            manager=by,
            metadata=_metadata("issue", by),
            now=now,
            by_operator=True,
        )

    try:
        answer = await _in_registry_log(urls["registry"], issue)
    except errors.ValidationFailed as exc:
        raise Failed(f"keys issue: {exc}. Nothing was issued.", code=2) from None
    assert answer is not None
    key_id, digest = auth.digest_of(answer["token"])
    for service, url in urls.items():
        if service == "registry":
            continue
        conn = await _connect(service, url)
        try:
            held = await conn.fetchval("SELECT secret_hash FROM api_keys WHERE key_id = $1", key_id)
            if held is None:
                await shared_api_keys.store_issued(
                    conn,
                    key_id=key_id,
                    digest=digest,
                    organisation=organisation,
                    roles=answer["roles"],
                    label=answer["label"],
                    expires_at=expires_at,
                    at=now,
                )
            elif bytes(held) != digest:  # no event could have made it: never overwritten
                raise Failed(f"{service} holds a key {key_id} with another secret")
        finally:
            await conn.close()
    return answer


async def keys_revoke(
    urls: Mapping[str, str], *, key_id: str, reason: str | None = None
) -> list[str]:
    """Revoke a key as the registry's `registry.api-key-revoked` event (the operator its
    actor), and at once in every service's copy (the consumers applying the event later keep
    that revocation). Returns the services where it was active."""
    now = datetime.now(UTC)
    by = operator()

    async def revoke(conn: asyncpg.Connection) -> dict[str, Any] | None:
        row = await shared_api_keys.row_of(conn, key_id)
        if row is None or row["revoked_at"] is not None:
            return None  # not in the registry (nothing to log), or revoked there already
        return await key_handlers.revoke(
            conn,
            organisation_id=row["organisation"],
            key_id=key_id,
            reason=reason,
            manager=by,
            metadata=_metadata("revoke", by),
            now=now,
        )

    revoked = ["registry"] if await _in_registry_log(urls["registry"], revoke) else []
    for service, url in urls.items():
        if service == "registry":
            continue
        conn = await _connect(service, url)
        try:
            status = await conn.execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
                key_id,
                now,
            )
            if status.endswith(" 1"):
                revoked.append(service)
        finally:
            await conn.close()
    return revoked


KEY_COLUMNS = ("key_id", "organisation", "roles", "label", "created_at", "revoked_at")
# shown when the table has them (keys that expire and record their use)
OPTIONAL_KEY_COLUMNS = ("expires_at", "last_used_at")


async def keys_list(urls: Mapping[str, str]) -> list[dict[str, object]]:
    """Every key (no secrets), with the services that know it. `last_used_at` is its latest
    use in any service (`last_used_in`: at each); a key revoked in one service shows revoked
    (its revocation is on its way to the others)."""
    keys: dict[str, dict[str, Any]] = {}
    for service, url in urls.items():
        conn = await _connect(service, url)
        try:
            rows = await conn.fetch("SELECT * FROM api_keys ORDER BY created_at, key_id")
        finally:
            await conn.close()
        for row in rows:
            shown = {c: row[c] for c in KEY_COLUMNS}
            shown.update({c: row[c] for c in OPTIONAL_KEY_COLUMNS if c in row})
            entry = keys.setdefault(row["key_id"], {**shown, "last_used_in": {}, "services": []})
            entry["services"].append(service)
            if entry["revoked_at"] is None:
                entry["revoked_at"] = shown["revoked_at"]
            used = shown.get("last_used_at")
            if used is not None:
                entry["last_used_in"][service] = used
                if entry.get("last_used_at") is None or used > entry["last_used_at"]:
                    entry["last_used_at"] = used
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
    """Replay the log into empty read models; returns (events replayed, rows per table).
    A progress bar on a terminal (cli_support.bars)."""
    projections = projections_of(service)
    conn = await _connect(service, url)
    try:
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
    finally:
        await conn.close()
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


def _when(value: object, absent: str) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return absent


def _keys_table(keys: list[dict[str, object]]) -> str:
    """One line a key, every id in full: key id, organisation, roles, label, status, when it
    expires (never), when it was last used in any service (- : not yet), the services."""
    header = ("key id", "organisation", "roles", "label", "status", "expires", "last used")
    lines: list[tuple[str, ...]] = []
    now = datetime.now(UTC)
    for k in keys:
        roles = ",".join(k["roles"]) if isinstance(k["roles"], list) else ""
        expires = k.get("expires_at")
        status = "revoked" if k["revoked_at"] else "active"
        if status == "active" and isinstance(expires, datetime) and expires <= now:
            status = "expired"
        lines.append(
            (
                str(k["key_id"]),
                str(k["organisation"]),
                roles,
                str(k["label"]) or "-",
                status,
                _when(expires, "never"),
                _when(k.get("last_used_at"), "-"),
            )
        )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    services = [",".join(k["services"]) if isinstance(k["services"], list) else "" for k in keys]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + "  " + s
        for row, s in zip([header, *lines], ["services", *services], strict=True)
    )


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _keys_json(keys: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{c: _json_value(v) for c, v in k.items()} for k in keys]


def _reason(text: str) -> str:
    if not text.strip() or len(text) > registry_events.MAX_REASON:
        raise argparse.ArgumentTypeError(
            f"1 to {registry_events.MAX_REASON} characters (this one has {len(text)})"
        )
    return text


def _label(text: str) -> str:
    """A key's label as the registry's key events carry it (a longer one could never be
    rotated over HTTP): argparse names the limit."""
    if len(text) > registry_events.MAX_LABEL:
        raise argparse.ArgumentTypeError(
            f"at most {registry_events.MAX_LABEL} characters (this one has {len(text)})"
        )
    return text


def expiry(text: str, *, now: datetime | None = None) -> datetime | None:
    """`--expires`: `never` (None), a duration from now (90d, 12h, 30m, 2w) or an instant
    (2027-03-01, 2027-03-01T12:00:00Z; a date or a time without an offset is UTC); it must
    lie ahead."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text.lower() == "never":
        return None
    if duration := DURATION.fullmatch(text.lower()):
        amount, unit = duration.groups()
        at = now + timedelta(**{DURATION_UNITS[unit]: int(amount)})
    else:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a duration (90d, 12h, 30m, 2w), an instant"
                " (2027-03-01T12:00:00Z) nor `never`"
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    if at <= now:
        raise argparse.ArgumentTypeError(f"{text!r} is not ahead: a key must expire later")
    return at


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
    keys = commands.add_parser("keys", help="API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="one of"
    )
    issue = keys.add_parser(
        "issue",
        help="issue a key, valid in every service, for an organisation the registry holds;"
        " prints it once",
    )
    issue.add_argument(
        "--organisation",
        required=True,
        metavar="ID",
        help="the organisation's id in the registry (operator roles alone may name another)",
    )
    issue.add_argument(
        "--roles", required=True, help=f"comma-separated: {', '.join(r.value for r in auth.Role)}"
    )
    issue.add_argument(
        "--label",
        default="",
        type=_label,
        help=f"a note on what the key is for (at most {registry_events.MAX_LABEL} characters)",
    )
    issue.add_argument(
        "--expires",
        type=expiry,
        default=None,
        metavar="WHEN",
        help="when the key stops working: a duration from now (90d, 12h, 30m, 2w), an instant"
        " (2027-03-01 or 2027-03-01T12:00:00Z; UTC unless an offset is given) or `never`"
        " (the default, for the operator's own keys: a partner's key had better expire)",
    )
    revoke = keys.add_parser(
        "revoke", help="revoke a key in every service (an event of the registry's log)"
    )
    revoke.add_argument("key_id", help="the key's id (`keys list`; twa_<key id>_...)")
    revoke.add_argument(
        "--reason",
        type=_reason,
        default=None,
        help=f"why, kept in the registry's event (at most {registry_events.MAX_REASON} characters)",
    )
    keys.add_parser(
        "list",
        help="list keys (never their secrets): status, expiry, last use in any service",
    )
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
        signing_command.add_argument("service", choices=SERVICES, help="whose signing key")
        signing_command.add_argument(
            "--key-file",
            type=Path,
            help="the worker's SIGNING_KEY_FILE (default: the dev stack's"
            " $TWINAID_DATA_DIR/keys/SERVICE.ed25519)",
        )
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


def _key_file(args: argparse.Namespace) -> Path:
    data_dir = Path(os.environ.get("TWINAID_DATA_DIR", ".data"))
    given: Path | None = args.key_file
    return given or data_dir / "keys" / f"{args.service}.ed25519"


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(exports_command.spelled_as_subcommand(given))
    warnings.filterwarnings("ignore", module="platformdirs")
    debug = bool(getattr(args, "debug", False)) or os.environ.get("TWINAID_DEBUG") == "1"
    return cli_support.guarded(lambda: run(args), debug=debug)


def run(args: argparse.Namespace) -> int:
    """The command `args` names; Failed (or an exception cli_support.describe knows) on an
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
        key_file = _key_file(args)
        try:
            public_key = signing.Signer.from_file(key_file).public_key
        except (OSError, ValueError) as exc:
            raise Failed(f"no usable signing key in {key_file}: {exc}") from None
        cli_support.emit(
            args,
            {"service": args.service, "key_file": str(key_file), "public_key": public_key},
            public_key,
        )
        return 0
    if args.command == "export":
        return exports_command.run(args)
    if args.command == "privacy" and args.action != "migrate":
        return privacy_command.run(args)
    urls = database_urls(args.database, os.environ, config.database_url)
    try:
        return _on_databases(args, config, urls)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise Failed(cli_support.database_unreachable(exc, list(urls.values()))) from exc


def _on_databases(
    args: argparse.Namespace, config: cli_support.Config, urls: Mapping[str, str]
) -> int:
    """The commands that open the services' databases."""
    if args.command == "audit":
        return audit_command.run(
            args,
            databases=urls,
            scratch_server=server_url(os.environ, config.database_url),
        )
    if args.command in ("backup", "restore"):
        return ops_command.run(args, urls=urls, env=os.environ)
    if args.command == "migrate":
        return migrate_command.run(args, databases=urls)
    if args.command == "privacy":
        return privacy_command.run_migrate(
            args, databases=urls, connect=_connect, projections=projections_of(args.service)
        )
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
    elif args.action == "rotate-signing":
        return _rotate(args, urls)
    elif args.action == "issue":
        return _issue(args, urls)
    elif args.action == "revoke":
        revoked = asyncio.run(keys_revoke(urls, key_id=args.key_id, reason=args.reason))
        if not revoked:
            raise Failed(f"no active key {args.key_id}")
        cli_support.emit(
            args,
            {"key_id": args.key_id, "revoked_in": revoked},
            f"key {args.key_id} revoked in {', '.join(revoked)}",
        )
    else:
        keys = asyncio.run(keys_list(urls))
        cli_support.emit(args, _keys_json(keys), lambda: _keys_table(keys))
    return 0


def _issue(args: argparse.Namespace, urls: Mapping[str, str]) -> int:
    roles = parse_roles(args.roles)
    issued = asyncio.run(
        keys_issue(
            urls,
            organisation=args.organisation,
            roles=roles,
            label=args.label,
            expires_at=args.expires,
        )
    )
    expires = issued["expires_at"]
    said = (
        f"key {issued['key_id']} for {args.organisation} ({', '.join(r.value for r in roles)}),"
        f" expiring {expires or 'never'}, registered in {', '.join(urls)} and recorded in the"
        " registry's log; it is shown once, store it now"
    )
    print(said + ("." if cli_support.wants_json(args) else ":"), file=sys.stderr)
    cli_support.emit(
        args,
        {
            "key_id": issued["key_id"],
            "organisation": args.organisation,
            "roles": [r.value for r in roles],
            "label": args.label,
            "expires_at": expires,
            "services": list(urls),
            "token": issued["token"],
        },
        issued["token"],
    )
    return 0


def _rotate(args: argparse.Namespace, urls: Mapping[str, str]) -> int:
    key_file = _key_file(args)
    try:
        done = asyncio.run(rotate_signing(args.service, urls[args.service], key_file))
    except signing_keys.RotationRefused as exc:
        raise Failed(str(exc)) from None
    cli_support.emit(
        args,
        {
            "service": done.service,
            "public_key": done.public_key,
            "previous_public_key": done.previous_public_key,
            "key_file": str(done.key_file),
            "previous_key_file": str(done.previous_key_file),
        },
        f"{done.service}: signing key {done.previous_public_key} replaced by"
        f" {done.public_key} in {done.key_file} (the old one kept in"
        f" {done.previous_key_file}); the change is in {done.service}'s log, signed by"
        f" the old key. Restart {done.service}'s worker to sign with the new key.",
    )
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
