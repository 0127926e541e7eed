"""`twinaid backup TARGET` and `twinaid restore SOURCE`."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services import cli_support
from services.audit.command import pinned_keys
from services.ops import backup as backupmod
from services.ops import restore as restoremod
from shared import devstack_keys
from shared.settings import SERVICES


def register(commands: Any) -> None:
    b = commands.add_parser(
        "backup",
        help="write each service's database, signing key and latest signed checkpoints to a"
        " directory or a .tar.gz, with a manifest",
    )
    b.add_argument("target", type=Path, help="a new directory, or a file ending in .tar.gz")
    cli_support.add_service_option(b)
    b.add_argument(
        "--key-file",
        action="append",
        default=[],
        metavar="SERVICE=PATH",
        help="a service's SIGNING_KEY_FILE (default: $SIGNING_KEY_FILE, else the dev stack's"
        " $TWINAID_DATA_DIR/keys/SERVICE.ed25519)",
    )
    b.add_argument(
        "--trusted-keys",
        type=Path,
        help="the pinned public keys (default: $TRUSTED_KEYS, else the dev stack's)",
    )
    b.add_argument("--without-keys", action="store_true", help="no signing keys in the backup")
    b.add_argument(
        "--keep-checkpoints",
        type=int,
        default=backupmod.DEFAULT_CHECKPOINTS,
        metavar="N",
        help="the latest N signed checkpoints of each log",
    )
    r = commands.add_parser(
        "restore",
        help="load a backup into empty databases, verify each log against the pinned keys and"
        " the kept checkpoints, compare it with the manifest, rebuild the read models"
        " from the log, and set the copies of upstream facts to what the upstreams restored"
        " with it say",
    )
    r.add_argument("source", type=Path, help="a backup directory or .tar.gz")
    cli_support.add_service_option(r)
    r.add_argument(
        "--replace", action="store_true", help="drop target databases (and key files) that hold"
    )
    r.add_argument(
        "--install-keys",
        type=Path,
        metavar="DIR",
        help="put the backed-up signing keys and pins in DIR (SERVICE.ed25519,"
        " trusted_keys.json: the dev stack's layout)",
    )
    r.add_argument(
        "--trusted-keys",
        type=Path,
        help="the pins to verify with (default: $TRUSTED_KEYS, else the backup's)",
    )
    r.add_argument(
        "--checkpoints",
        type=Path,
        help="signed checkpoints kept elsewhere (JSON), checked besides the backup's",
    )


def backup_keys(args: argparse.Namespace, env: Mapping[str, str]) -> backupmod.Keys | None:
    if args.without_keys:
        return None
    files: dict[str, Path] = {}
    for item in args.key_file:
        service, sep, path = item.partition("=")
        if not sep or service not in SERVICES or not path:
            raise SystemExit(f"twinaid: --key-file wants SERVICE=PATH, got {item!r}")
        files[service] = Path(path)
    for service in SERVICES:
        found = devstack_keys.worker_key_file(service, env)
        if service not in files and (env.get("SIGNING_KEY_FILE") or found.exists()):
            files[service] = found
    keys_dir = devstack_keys.default_keys_dir(env)
    pins: str | None = None
    if args.trusted_keys is not None or env.get("TRUSTED_KEYS"):
        pins = json.dumps(pinned_keys(args.trusted_keys, env), indent=2) + "\n"
    elif devstack_keys.pins_file(keys_dir).exists():
        pins = devstack_keys.pins_file(keys_dir).read_text()
    return backupmod.Keys(files, pins)


def _backup(args: argparse.Namespace, urls: Mapping[str, str], env: Mapping[str, str]) -> int:
    chosen = {s: u for s, u in urls.items() if not args.service or s in args.service}
    keys = backup_keys(args, env)
    manifest = backupmod.backup(chosen, args.target, keys=keys, checkpoints=args.keep_checkpoints)
    if cli_support.wants_json(args):
        print(json.dumps(manifest, indent=2))
        return 0
    for service, entry in manifest["services"].items():
        key = "its signing key" if entry["signing_key"] else "NO signing key"
        print(
            f"{service}: {entry['events']:,} events, head {entry['head']['position']}"
            f" {entry['head']['hash']}, {len(entry['tables'])} tables,"
            f" {len(entry['checkpoint_positions'])} signed checkpoints, {key}"
        )
    print(
        f"backed up to {args.target} in {manifest['seconds']:.1f} s. Keep the keys/ folder and"
        f" {backupmod.CHECKPOINTS} apart from the database backups."
    )
    return 0


def _restore(args: argparse.Namespace, urls: Mapping[str, str], env: Mapping[str, str]) -> int:
    started = time.monotonic()
    try:
        with restoremod.opened(args.source) as folder:
            manifest = restoremod.read_manifest(folder, args.service)
            services = args.service or list(manifest["services"])
            if args.trusted_keys is not None or env.get("TRUSTED_KEYS"):
                pins, pins_from = pinned_keys(args.trusted_keys, env), "given"
            elif (folder / backupmod.PINS).exists():
                pins, pins_from = pinned_keys(folder / backupmod.PINS, {}), "the backup's"
            else:
                pins, pins_from = {}, "none"
            held = restoremod.held_checkpoints(folder, args.checkpoints)
            planned = (
                restoremod.planned_keys(
                    folder, manifest, services, args.install_keys, replace=args.replace
                )
                if args.install_keys
                else []
            )
            reports = asyncio.run(
                restoremod.restore(
                    {s: urls[s] for s in services},
                    folder,
                    manifest,
                    replace=args.replace,
                    pins=pins,
                    held=held,
                )
            )
            installed = restoremod.install_keys(planned)
    except restoremod.Refused as exc:
        raise cli_support.Failed(f"restore refused: {exc}", code=2) from None
    ok = all(r["ok"] for r in reports)
    result = {
        "verdict": "same history" if ok else "DIFFERS",
        "read_models": "rebuilt from the log",
        "copies": restoremod.copies_verdict(reports),
        "ok": ok,
        "seconds": round(time.monotonic() - started, 3),
        "backup_created_at": manifest["created_at"],
        "pins": pins_from,
        "keys_installed": installed,
        "services": reports,
    }
    print(json.dumps(result, indent=2) if cli_support.wants_json(args) else _table(result))
    return 0 if ok else 1


def _table(result: Mapping[str, Any]) -> str:
    lines = []
    for r in result["services"]:
        chain = r["chain"]
        state = (
            f"intact up to {chain['head_position']}, {chain['checkpoints_checked']} signed"
            f" checkpoints ({r['held_checkpoints']} kept)"
            if chain["intact"]
            else f"BROKEN at {chain['bad_position']}: {chain['problem']}"
        )
        head = (
            "head as in the manifest"
            if r["head_matches"]
            else (
                f"head {r['head']['position']} {r['head']['hash']} but the manifest says"
                f" {r['manifest_head']['position']} {r['manifest_head']['hash']}"
            )
        )
        lines.append(
            f"{r['service']:<10} {r['events']:>9,} events  {state}; {head};"
            f" loaded in {r['seconds_load']:.1f} s, verified in {r['seconds_verify']:.1f} s"
        )
        if chain["warning"]:
            lines.append(" " * 11 + f"WARNING: {chain['warning']}")
        if r["tables_passed_over"]:
            lines.append(
                " " * 11
                + "empty tables this release no longer has, passed over: "
                + ", ".join(r["tables_passed_over"])
            )
        for table, counts in r["rows_differ"].items():
            lines.append(
                " " * 11 + f"{table}: {counts['restored']} rows, the backup had {counts['backup']}"
            )
        rebuilt = r["read_models"]
        lines.append(
            " " * 11 + f"read models rebuilt from the log ({rebuilt['events_replayed']:,} events"
            f" replayed in {r['seconds_rebuild']:.1f} s)"
        )
        for table, rows in rebuilt["differed_from_backup"].items():
            lines.append(
                " " * 11 + f"WARNING: {table}: {rows} rows of the backup differed from what the"
                " log says (the backup or its source database was changed); rebuilt from the log"
            )
        lines += _copies_lines(r["copies"])
    lines += [f"keys installed: {path}" for path in result["keys_installed"]]
    lines.append(
        f"verdict: {result['verdict']}, read models rebuilt from the log, copies of upstream"
        f" facts {result['copies']} (restored in {result['seconds']:.1f} s; backup of"
        f" {result['backup_created_at']}; pins: {result['pins']})"
    )
    return "\n".join(lines)


def _copies_lines(found: Mapping[str, Any]) -> list[str]:
    pad = " " * 11
    lines = []
    if found["checked_against"]:
        rows = ", ".join(f"{t} {n}" for t, n in found["rows"].items())
        lines.append(
            pad + f"copies checked against the logs of {', '.join(found['checked_against'])}:"
            f" {rows}"
        )
    if found["not_checked"]:
        lines.append(
            pad + f"WARNING: copies of {', '.join(found['not_checked'])}'s facts NOT checked"
            " (not restored in this run)"
        )
    for d in found["differences"]:
        column = f" {d['column']}" if d["column"] else ""
        done = (
            "set to the log's"
            if d["table"] in found["rebuilt"]
            else "NOT repaired (the restore differs)"
        )
        lines.append(
            pad + f"WARNING: {d['table']} {json.dumps(d['key'])}: {d['kind']}{column}: the"
            f" backup held {json.dumps(d['live'])}, {d['copy_of']}'s log says"
            f" {json.dumps(d['rebuilt'])}; {done}"
        )
    return lines


def run(args: argparse.Namespace, *, urls: Mapping[str, str], env: Mapping[str, str]) -> int:
    if args.command == "backup":
        return _backup(args, urls, env)
    return _restore(args, urls, env)
