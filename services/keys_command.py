"""`twinaid keys issue|revoke|list|rotate-signing|signing-pin`: API keys valid in every service,
recorded in the registry's log, and the services' checkpoint signing keys (services/keys_admin.py
does the work on the databases)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services import cli_support, keys_admin
from services.audit import signing_keys
from services.cli_support import Failed
from services.registry import events as registry_events
from shared import api_keys, auth, devstack_keys, signing
from shared.settings import SERVICES

DURATION = re.compile(r"^(\d+)([mhdw])$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(commands: Any) -> None:
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


def _key_file(args: argparse.Namespace) -> Path:
    given: Path | None = args.key_file
    keys_dir = devstack_keys.default_keys_dir(os.environ)
    return given or devstack_keys.signing_key_file(keys_dir, args.service)


def signing_pin(args: argparse.Namespace) -> int:
    """The public key of a service's signing key file (created the first time): no database."""
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


def run(args: argparse.Namespace, urls: Mapping[str, str]) -> int:
    """rotate-signing, issue, revoke or list, on the services' databases `urls`."""
    if args.action == "rotate-signing":
        return _rotate(args, urls)
    if args.action == "issue":
        return _issue(args, urls)
    if args.action == "revoke":
        revoked = asyncio.run(keys_admin.keys_revoke(urls, key_id=args.key_id, reason=args.reason))
        if not revoked:
            raise Failed(f"no active key {args.key_id}")
        cli_support.emit(
            args,
            {"key_id": args.key_id, "revoked_in": revoked},
            f"key {args.key_id} revoked in {', '.join(revoked)}",
        )
        return 0
    keys = asyncio.run(keys_admin.keys_list(urls))
    cli_support.emit(args, _keys_json(keys), lambda: _keys_table(keys))
    return 0


def _issue(args: argparse.Namespace, urls: Mapping[str, str]) -> int:
    roles = parse_roles(args.roles)
    issued = asyncio.run(
        keys_admin.keys_issue(
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
        done = asyncio.run(keys_admin.rotate_signing(args.service, urls[args.service], key_file))
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


def _when(value: object, absent: str) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return absent


def _status(key: dict[str, object], now: datetime) -> str:
    """As the API's key answers say (a table without expiries: none expires)."""
    return api_keys.status_of(
        {"revoked_at": key["revoked_at"], "expires_at": key.get("expires_at")}, now
    )


def _keys_table(keys: list[dict[str, object]]) -> str:
    """One line a key, every id in full: key id, organisation, roles, label, status, when it
    expires (never), when it was last used in any service (- : not yet), the services."""
    header = ("key id", "organisation", "roles", "label", "status", "expires", "last used")
    lines: list[tuple[str, ...]] = []
    now = datetime.now(UTC)
    for k in keys:
        roles = ",".join(k["roles"]) if isinstance(k["roles"], list) else ""
        expires = k.get("expires_at")
        status = _status(k, now)
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
    """An instant in UTC as the API answers it (`...Z`)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _keys_json(keys: list[dict[str, object]]) -> list[dict[str, object]]:
    """Each key as the table shows it, its status included."""
    now = datetime.now(UTC)
    return [{**{c: _json_value(v) for c, v in k.items()}, "status": _status(k, now)} for k in keys]
