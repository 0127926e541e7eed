"""What went wrong, in one line: every `twinaid` command's errors (a bad URL, key, database or
file, an API's problem answer) as the user reads them instead of a traceback; anything else is
named as a bug."""

from __future__ import annotations

import errno
import json
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import psycopg

from services.cli_support import KEY_ENV, Failed, hide_passwords


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _network_reason(exc: BaseException, what: str = "the service") -> str:
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return "no such host (the name does not resolve)"
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return f"connection refused (nothing listens there: is {what} running?)"
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror).lower()
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "no such host (the name does not resolve)"
    if "Connection refused" in text or "All connection attempts failed" in text:
        return f"connection refused (nothing listens there: is {what} running?)"
    return text or type(exc).__name__


def _where(exc: httpx.HTTPError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:
        return "the service"
    return f"{url.scheme}://{url.netloc.decode()}"


def problem_of(response: httpx.Response) -> str:
    """The API's problem (RFC 9457) in one line, or its status."""
    try:
        response.read()
        body = response.json()
    except (ValueError, httpx.HTTPError):
        body = None
    if isinstance(body, dict) and body.get("detail"):
        title = body.get("title") or response.reason_phrase
        return f"{response.status_code} {title}: {body['detail']}"
    return f"{response.status_code} {response.reason_phrase}"


def describe_response(response: httpx.Response) -> str:
    where = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    said = problem_of(response)
    if response.status_code == 401:
        return (
            f"{where} refused the API key: {said}; give a valid one with --key,"
            f" ${KEY_ENV} or api_key in the config file"
        )
    if response.status_code == 403:
        return f"{where}: this API key may not do that: {said}"
    if response.status_code == 404:
        return f"{where}{response.request.url.path}: not found: {said}"
    return f"{where}{response.request.url.path} answered {said}"


def describe(exc: BaseException) -> str:
    """One line on what went wrong, for the exceptions a command can meet on a bad URL, key,
    database or file; anything else is named as a bug."""
    if isinstance(exc, Failed):
        return str(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        return describe_response(exc.response)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"not a usable URL: {exc} (URLs start with http:// or https://)"
    if isinstance(exc, httpx.TimeoutException):
        return f"{_where(exc)} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach {_where(exc)}: {_network_reason(exc)}"
    if isinstance(exc, httpx.HTTPError):
        return f"{_where(exc)}: {type(exc).__name__}: {exc}"
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return f"the database refused the login: {exc}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"the database does not exist: {exc}"
    if isinstance(exc, asyncpg.PostgresError):
        return f"the database answered {type(exc).__name__}: {exc}"
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return f"the database connection failed: {exc}"
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot reach the database: {first}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, OSError | TimeoutError):
        # asyncpg connecting to a server that is down, or a name that does not resolve
        return database_unreachable(exc, [])
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc}"
    return (
        f"unexpected {type(exc).__name__}: {exc or '(no message)'}; this is a bug: run again"
        " with --debug (or TWINAID_DEBUG=1) and report the traceback"
    )


def database_unreachable(exc: BaseException, urls: Sequence[str]) -> str:
    """One line on a database server that cannot be reached, naming it (never a password)."""
    servers = sorted({_server(url) for url in urls})
    where = f" {' or '.join(servers)}" if servers else ""
    return (
        f"cannot reach the database server{where}: {_network_reason(exc, 'PostgreSQL')};"
        " set --database, DATABASE_URL or database_url in the config file"
    )


def _server(url: str) -> str:
    parsed = urlsplit(url)
    socket_dir = parse_qs(parsed.query).get("host", [""])[0]
    if not parsed.hostname and socket_dir:
        return f"{socket_dir} (Unix socket)"
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}"


def guarded(body: Callable[[], int], *, debug: bool) -> int:
    """Run a command: its anticipated failures and the known ones of networks, databases
    and files as one line on standard error and a non-zero exit code; with `debug`, the
    traceback instead."""
    try:
        return body()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("twinaid: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug and not isinstance(exc, Failed):
            raise
        code = exc.code if isinstance(exc, Failed) else 1
        line = " ".join(hide_passwords(describe(exc)).split())
        print(f"twinaid: {line}", file=sys.stderr)
        return code
