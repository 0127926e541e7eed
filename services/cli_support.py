"""What every `twinaid` command shares: where the services and the key are (flag > environment >
config file > default), JSON output, argument parsing, progress bars (one-line errors instead of
tracebacks: services/cli_errors.py).

The config file is TOML: `--config FILE`, else $TWINAID_CONFIG, else
$XDG_CONFIG_HOME/twinaid/config.toml (~/.config/twinaid/config.toml)::

    port_base = 9100                  # registry 9101, pledges 9102, shipments 9103
    api_key = "twa_..."               # any command that calls an API
    audit_key = "twa_..."             # the audit commands (default: api_key)
    database_url = "postgresql://..." # the server of the commands that open the databases
    [urls]
    pledges = "https://pledges.example.org"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from shared.domain_checks import ascii_digits
from shared.settings import SERVICES

PORT_BASE = 8100  # the dev stack's (shared/devstack.py): service n of SERVICES on PORT_BASE + n
URL_ENV = {s: f"TWINAID_{s.upper()}_URL" for s in SERVICES}
KEY_ENV = "TWINAID_API_KEY"
# older names, still read first by the commands that had them
AUDIT_KEY_ENV = "TWINAID_AUDIT_KEY"
EXPORT_KEY_ENV = "TWINAID_KEY"
FILE_KEYS = {"port_base", "api_key", "audit_key", "database_url", "urls"}


class Failed(Exception):
    """An anticipated failure of a command: its message is the one line the user reads."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Config:
    """The settings of one run and where each came from (`twinaid config` shows them)."""

    urls: dict[str, str]
    api_key: str | None = None
    audit_key: str | None = None
    database_url: str | None = None
    file: Path | None = None
    origin: dict[str, str] = field(default_factory=dict)

    def url(self, service: str, given: str | None = None) -> str:
        return (given or self.urls[service]).rstrip("/")

    def key(self, given: str | None = None, *, audit: bool = False) -> str | None:
        if given:
            return given
        return (self.audit_key or self.api_key) if audit else self.api_key

    def as_dict(self) -> dict[str, Any]:
        """The settings as shown: keys masked, everything else whole."""
        return {
            "file": str(self.file) if self.file else None,
            "urls": self.urls,
            "api_key": masked(self.api_key),
            "audit_key": masked(self.audit_key),
            "database_url": hide_passwords(self.database_url) if self.database_url else None,
            "origin": self.origin,
        }


def masked(key: str | None) -> str | None:
    """A key's public id (`twa_<id>_…`) without its secret."""
    if not key:
        return None
    prefix, _, rest = key.partition("_")
    key_id = rest.partition("_")[0]
    return f"{prefix}_{key_id}_…" if prefix == "twa" and key_id else "(set)"


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("TWINAID_CONFIG"):
        return Path(env["TWINAID_CONFIG"])
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    return base / "twinaid" / "config.toml"


def _read_file(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise Failed(f"no config file {path}") from None
        return {}
    except OSError as exc:
        raise Failed(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Failed(f"the config file {path} is not TOML: {exc}") from None
    unknown = sorted(set(values) - FILE_KEYS)
    if unknown:
        raise Failed(
            f"the config file {path} has unknown settings {', '.join(unknown)};"
            f" known: {', '.join(sorted(FILE_KEYS))}"
        )
    urls = values.get("urls", {})
    if not isinstance(urls, dict) or not all(
        s in SERVICES and isinstance(u, str) for s, u in urls.items()
    ):
        raise Failed(
            f'the config file {path}: [urls] wants SERVICE = "URL" with SERVICE one of'
            f" {', '.join(SERVICES)}"
        )
    for name in ("api_key", "audit_key", "database_url"):
        if name in values and not isinstance(values[name], str):
            raise Failed(f"the config file {path}: {name} wants a string")
    if "port_base" in values and not _port_base_ok(values["port_base"]):
        raise Failed(f"the config file {path}: port_base wants a number from 1 to 65000")
    return values


def _port_base_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65000


def load(env: Mapping[str, str], given: Path | None = None) -> Config:
    """The settings: environment over the config file (`given`, else config_path) over the
    dev stack's defaults. Failed naming what is wrong with a file or a variable."""
    path = given or config_path(env)
    values = _read_file(path, required=given is not None or bool(env.get("TWINAID_CONFIG")))
    file = path if values else None
    shown = f"config file {path}"
    origin: dict[str, str] = {}

    base, base_from = PORT_BASE, "default"
    if env.get("TWINAID_PORT_BASE"):
        text = env["TWINAID_PORT_BASE"]
        number = ascii_digits(text, max_digits=5)
        if number is None or not _port_base_ok(number):
            raise Failed(f"TWINAID_PORT_BASE wants a number from 1 to 65000, not {text!r}")
        base, base_from = number, "TWINAID_PORT_BASE"
    elif "port_base" in values:
        base, base_from = values["port_base"], f"{shown} (port_base)"
    urls: dict[str, str] = {}
    for n, service in enumerate(SERVICES, start=1):
        if env.get(URL_ENV[service]):
            urls[service], origin[f"{service}_url"] = env[URL_ENV[service]], URL_ENV[service]
        elif base_from == "TWINAID_PORT_BASE" or service not in values.get("urls", {}):
            urls[service] = f"http://127.0.0.1:{base + n}"
            origin[f"{service}_url"] = base_from
        else:
            urls[service] = values["urls"][service]
            origin[f"{service}_url"] = f"{shown} ([urls] {service})"

    def pick(name: str, *variables: str) -> str | None:
        for variable in variables:
            if env.get(variable):
                origin[name] = variable
                return env[variable]
        if values.get(name):
            origin[name] = f"{shown} ({name})"
            return str(values[name])
        return None

    return Config(
        urls=urls,
        api_key=pick("api_key", KEY_ENV),
        audit_key=pick("audit_key", AUDIT_KEY_ENV),
        database_url=pick("database_url", "DATABASE_URL"),
        file=file,
        origin=origin,
    )


def config_of(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """The settings main() resolved for this run, or (a command called on its own, as the
    tests do) those of `env`."""
    resolved = getattr(args, "settings", None)
    if isinstance(resolved, Config):
        return resolved
    return load(os.environ if env is None else env)


def add_url_option(parser: argparse.ArgumentParser) -> None:
    """--url SERVICE=URL, as often as needed: a service's API other than the configured one."""
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a service's API (default: $TWINAID_<SERVICE>_URL, $TWINAID_PORT_BASE, the config"
        " file, else the dev stack's ports)",
    )


def add_service_option(parser: argparse.ArgumentParser, *, text: str = "(default: all)") -> None:
    """--service SERVICE, as often as needed: only these services (none given, [] : all)."""
    parser.add_argument(
        "--service",
        action="append",
        default=[],
        choices=SERVICES,
        help=f"only these services {text}",
    )


def service_urls(given: Sequence[str], config: Config) -> dict[str, str]:
    """Every service's API: the --url given for it (add_url_option), else the configured one.
    Failed (2) on a --url that is not SERVICE=URL."""
    urls = {s: config.url(s) for s in SERVICES}
    for item in given:
        service, _, url = item.partition("=")
        if service not in SERVICES or not url:
            raise Failed(
                f"--url wants SERVICE=URL with SERVICE one of {', '.join(SERVICES)}, got {item!r}",
                code=2,
            )
        urls[service] = url.rstrip("/")
    return urls


# --- output


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str]) -> None:
    """`data` as JSON with --json, else the text for people (a callable is called only then)."""
    if wants_json(args):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        print(text() if callable(text) else text)


# --- passwords (never shown: settings, errors)

_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.IGNORECASE)


def hide_passwords(text: str) -> str:
    return _PASSWORD.sub(r"\g<scheme>:***@", text)


class Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (and where to find the usage) instead of the
    whole usage; exit code 2 as argparse's."""

    def error(self, message: str) -> NoReturn:
        print(
            f"{self.prog}: error: {message} (see `{self.prog} --help`)",
            file=sys.stderr,
        )
        raise SystemExit(2)


def leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parsers of the commands `parser` runs (those without subcommands of their own)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield parser
        return
    for action in subcommands:
        seen: set[int] = set()
        for sub in action.choices.values():
            if id(sub) not in seen:
                seen.add(id(sub))
                yield from leaves(sub)


def common_options(parser: argparse.ArgumentParser) -> None:
    """--json and --debug on a command too, beside `twinaid --json` (which they never reset)."""
    if "--json" not in parser._option_string_actions:
        parser.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS,
            help="machine-readable JSON on standard output (errors stay one line on"
            " standard error)",
        )
    if "--debug" not in parser._option_string_actions:
        parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the traceback of an error (also TWINAID_DEBUG=1)",
        )


# --- progress


def progress_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Bars only on a terminal (never into a pipe, a file or the --json a script reads);
    TWINAID_PROGRESS=1 forces them, 0 turns them off."""
    env = os.environ if env is None else env
    forced = env.get("TWINAID_PROGRESS", "")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


class Bars:
    """Progress bars on standard error, one per task, with the rate and the time left when
    the total is known; nothing at all when disabled."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def task(self, description: str, total: int | None = None) -> Callable[[int], None]:
        """A task; the returned callable sets how much of it is done."""
        if self._progress is None:
            return lambda done: None
        progress = self._progress
        task_id: TaskID = progress.add_task(description, total=total)

        def update(done: int) -> None:
            progress.update(task_id, completed=done)

        return update


@contextmanager
def bars(env: Mapping[str, str] | None = None) -> Iterator[Bars]:
    if not progress_enabled(env):
        yield Bars(None)
        return
    console = Console(file=sys.stderr, force_terminal=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=8,
    )
    with progress:
        yield Bars(progress)
