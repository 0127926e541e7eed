"""`twinaid privacy find|export|erase|migrate`: a person's data across the services (GDPR
articles 15 and 17), over each service's /v1/privacy API (shared/privacy_routes.py).

    twinaid privacy find --name "Olha Kravchenko" [--organisation kharkiv]
    twinaid privacy export shipments-3f0c...            # the service is the id's prefix
    twinaid privacy export --name "Olha Kravchenko" --organisation kharkiv
    twinaid privacy erase shipments-3f0c... --basis gdpr-art-17
    twinaid privacy erase --name "Olha Kravchenko" --organisation kharkiv --basis gdpr-art-17 --yes
    twinaid privacy migrate shipments                   # seal the clear persons of old events

Each service keeps its own subjects (one person as one organisation recorded them), so `find`
asks every service and `export`/`erase` by name act on every subject found. The name travels in
a request body, never in a URL, and is never printed back. The URLs come from --url SERVICE=URL,
else $TWINAID_<SERVICE>_URL, $TWINAID_PORT_BASE, the config file, else the dev stack's ports;
the key from --key, else $TWINAID_API_KEY or the config file: a registry administrator's key
handles anyone, an organisation's member, logistics or org_admin key the people it recorded.
`migrate` opens the service's database (--database, DATABASE_URL, the config file) and signs
with the service's signing key (--key-file, else $SIGNING_KEY_FILE, else the dev stack's).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

import httpx

from services import cli_errors, cli_support
from services.cli_support import Failed
from shared import privacy, privacy_subjects
from shared.settings import SERVICES

TIMEOUT = 30.0
BASES = [str(basis) for basis in get_args(privacy_subjects.LegalBasis)]
SUBJECT = re.compile(privacy.SUBJECT_ID)


def register(commands: Any) -> None:
    p = commands.add_parser(
        "privacy",
        help="find, export (access) or erase a person's data across the services; migrate old"
        " events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", help="one of")
    api = argparse.ArgumentParser(add_help=False)
    cli_support.add_url_option(api)
    api.add_argument(
        "--key",
        help="an API key: a registry administrator's, or a member, logistics or org_admin key"
        " of the organisation that recorded the person (default: $TWINAID_API_KEY, the config"
        " file)",
    )
    cli_support.add_service_option(api, text="to look in (default: all)")
    by_name = argparse.ArgumentParser(add_help=False)
    by_name.add_argument(
        "--organisation",
        metavar="ID",
        help="the organisation that recorded the person (default: any the key may see)",
    )

    find = actions.add_parser(
        "find", parents=[api, by_name], help="the subject ids recorded under a name, per service"
    )
    find.add_argument("--name", required=True, help="the person's name, as recorded")

    export = actions.add_parser(
        "export",
        parents=[api, by_name],
        help="everything held about a person, decrypted (an access request)",
    )
    export.add_argument(
        "subject", nargs="?", help="a subject id (its prefix names the service: shipments-...)"
    )
    export.add_argument("--name", help="instead of an id: every subject found under this name")

    erase = actions.add_parser(
        "erase",
        parents=[api, by_name],
        help="erase a person: destroy their key in the service that recorded them",
    )
    erase.add_argument("subject", nargs="?", help="a subject id (shipments-...)")
    erase.add_argument(
        "--name",
        help="instead of an id: every subject the --organisation recorded under this name",
    )
    erase.add_argument(
        "--basis",
        required=True,
        choices=BASES,
        help="the legal basis: gdpr-art-17 (the person asked), gdpr-art-21 (they objected),"
        " retention, legal-obligation, other",
    )
    erase.add_argument(
        "--yes",
        action="store_true",
        help="erase every subject --name found when there is more than one",
    )

    migrate = actions.add_parser(
        "migrate",
        help="seal the persons that events written before encryption hold in clear (a signed,"
        " verifiable rewrite of the service's log)",
    )
    migrate.add_argument("service", choices=SERVICES, help="whose log")
    migrate.add_argument(
        "--key-file",
        type=Path,
        help="the service's signing key (default: $SIGNING_KEY_FILE, else the dev stack's"
        " $TWINAID_DATA_DIR/keys/SERVICE.ed25519)",
    )


# --- over the APIs


class Api:
    """The services' privacy routes, with one key; any answer but the expected ones Failed."""

    def __init__(self, args: argparse.Namespace, client: httpx.Client) -> None:
        config = cli_support.config_of(args)
        self.urls = cli_support.service_urls(getattr(args, "url", []), config)
        key = config.key(args.key)
        if not key:
            raise Failed(
                "an API key is needed: --key, $TWINAID_API_KEY or api_key in the config file"
            )
        self.headers = {"Authorization": f"Bearer {key}"}
        self.client = client
        self.services: list[str] = list(dict.fromkeys(args.service)) or list(SERVICES)

    def find(self, name: str, organisation: str | None) -> list[dict[str, Any]]:
        """Every subject found under `name`, each with its service, in SERVICES order."""
        found: list[dict[str, Any]] = []
        body: dict[str, Any] = {"name": name}
        if organisation is not None:
            body["organisation"] = organisation
        for service in self.services:
            response = self.client.post(
                f"{self.urls[service]}/v1/privacy/subjects/search", json=body, headers=self.headers
            )
            if response.status_code != 200:
                raise Failed(cli_errors.describe_response(response))
            found += [{"service": service, **item} for item in response.json()["items"]]
        return found

    def export(self, subject_id: str) -> dict[str, Any]:
        service = service_of(subject_id)
        response = self.client.get(
            f"{self.urls[service]}/v1/privacy/subjects/{quote(subject_id, safe='')}",
            headers=self.headers,
        )
        self._expect(response, subject_id, service)
        answer: dict[str, Any] = response.json()
        return answer

    def erase(self, subject_id: str, basis: str) -> dict[str, Any]:
        service = service_of(subject_id)
        response = self.client.post(
            f"{self.urls[service]}/v1/privacy/subjects/{quote(subject_id, safe='')}/erasure",
            json={"legal_basis": basis},
            headers=self.headers,
        )
        self._expect(response, subject_id, service)
        answer: dict[str, Any] = {"service": service, **response.json()}
        return answer

    def _expect(self, response: httpx.Response, subject_id: str, service: str) -> None:
        if response.status_code == 404 and _is_problem(response):
            raise Failed(
                f"{service} holds no subject {subject_id} this key may handle (unknown, or"
                " recorded by another organisation)"
            )
        if response.status_code != 200:
            raise Failed(cli_errors.describe_response(response))


def _is_problem(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/problem+json")


def service_of(subject_id: str) -> str:
    """The service that recorded a subject (its id's prefix); Failed (2) on an id that is
    not a subject's."""
    service = subject_id.partition("-")[0]
    if not SUBJECT.fullmatch(subject_id) or service not in SERVICES:
        raise Failed(
            f"{subject_id!r} is not a subject id: SERVICE-<32 hex digits> with SERVICE one of"
            f" {', '.join(SERVICES)} (`twinaid privacy find --name NAME` lists them)",
            code=2,
        )
    return service


def _one_target(args: argparse.Namespace) -> None:
    if (args.subject is None) == (args.name is None):
        raise Failed(
            f"privacy {args.action}: give either a subject id or --name (not both)", code=2
        )
    if args.subject is not None and args.organisation is not None:
        raise Failed(f"privacy {args.action}: --organisation goes with --name", code=2)


def _nothing_found(api: Api) -> str:
    return f"no subject recorded under that name in {', '.join(api.services)}"


# --- the actions


def _find(args: argparse.Namespace, api: Api) -> int:
    found = api.find(args.name, args.organisation)
    if not found and not cli_support.wants_json(args):
        raise Failed(f"privacy find: {_nothing_found(api)}")
    cli_support.emit(args, found, lambda: _subjects_text(found))
    return 0 if found else 1


def _export(args: argparse.Namespace, api: Api) -> int:
    if args.subject is not None:
        one = api.export(args.subject)
        cli_support.emit(args, one, lambda: _export_text(one))
        return 0
    found = api.find(args.name, args.organisation)
    exports = [api.export(s["subject_id"]) for s in found]
    if not exports and not cli_support.wants_json(args):
        raise Failed(f"privacy export: {_nothing_found(api)}")
    cli_support.emit(args, exports, lambda: "\n\n".join(_export_text(e) for e in exports))
    return 0 if exports else 1


def _erase(args: argparse.Namespace, api: Api) -> int:
    if args.subject is not None:
        targets = [args.subject]
    else:
        targets = [s["subject_id"] for s in api.find(args.name, args.organisation)]
        if not targets:
            raise Failed(f"privacy erase: {_nothing_found(api)}; nothing erased")
        if len(targets) > 1 and not args.yes:
            raise Failed(
                f"privacy erase: {len(targets)} subjects found under that name"
                f" ({', '.join(targets)}); erase them all with --yes, or one by its id."
                " Nothing erased.",
                code=2,
            )
    erased = [api.erase(target, args.basis) for target in targets]
    cli_support.emit(
        args,
        erased if args.subject is None else erased[0],
        lambda: "\n".join(_erased_text(e) for e in erased),
    )
    return 0


# --- text for people


def _subjects_text(found: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for s in found:
        lines.append(
            f"{s['service']:<10} {s['subject_id']}  recorded by {s['organisation_id']}"
            f" (first {s['created_at']}, last {s['last_recorded_at']})"
        )
    return "\n".join(lines)


def _status(s: Mapping[str, Any]) -> str:
    if s.get("erased"):
        return f"erased at {s['erased_at']} (asked by {s['erased_by']}, basis {s['legal_basis']})"
    return "held"


def _person_text(person: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in person.items() if k not in ("subject_id", "erased")}
    return ", ".join(f"{k}: {v}" for k, v in shown.items() if v is not None)


def _export_text(e: Mapping[str, Any]) -> str:
    lines = [
        f"{e['subject_id']}  ({e['service']}, recorded by {e['organisation_id']}; {_status(e)})",
        f"  first recorded {e['created_at']}, last {e['last_recorded_at']}",
    ]
    occurrences = e.get("occurrences") or []
    lines.append(f"  {len(occurrences)} event(s) hold them:")
    for o in occurrences:
        lines.append(f"  {o['recorded_at']}  {o['event_type']}  {o['stream_id']}  {o['event_id']}")
        lines += [f"      {_person_text(p)}" for p in o.get("persons", [])]
    return "\n".join(lines)


def _erased_text(e: Mapping[str, Any]) -> str:
    return f"{e['subject_id']}: {_status(e)}; recorded by {e['organisation_id']}"


# --- entry


def run(args: argparse.Namespace) -> int:
    """find, export, erase (over the APIs); `migrate` is privacy_migrate_command.run, on the
    database."""
    if args.action != "find":
        _one_target(args)
        if args.subject is not None:
            service_of(args.subject)
    if args.action == "erase" and args.name is not None and args.organisation is None:
        raise Failed(
            "privacy erase --name needs --organisation: the organisation that recorded the"
            " person (namesakes of other organisations are other people)",
            code=2,
        )
    with httpx.Client(timeout=TIMEOUT) as client:
        api = Api(args, client)
        if args.action == "find":
            return _find(args, api)
        if args.action == "export":
            return _export(args, api)
        return _erase(args, api)
