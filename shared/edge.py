"""The HTTP edge of every request, before any route: correlation id in and out, request
metrics and the access log, a cap on body size, NUL characters refused (PostgreSQL cannot
store them in text) and a query parameter a route takes once sent twice refused
(shared/query_repeats.py), each refusal a problem+json."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import logs, problems, query_repeats
from shared.domain_checks import ascii_digits
from shared.metrics import Metrics

__all__ = ["MAX_BODY_BYTES", "EdgeMiddleware"]

log = logging.getLogger("twinaid.web")
access_log = logging.getLogger("twinaid.access")
MAX_BODY_BYTES = 1_000_000
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


async def _reject(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    title: str,
    detail: str,
    invalid: list[dict[str, str]] | None = None,
) -> None:
    slug = "too-large" if status == 413 else "validation-error"
    body: dict[str, Any] = {
        "type": f"https://twinaid.example/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if invalid:
        body["invalid_params"] = invalid
    await problems.problem_response(status, body)(scope, receive, send)


async def _refuse_nul(
    scope: Scope, receive: Receive, send: Send, names: list[str], *, unnamed: str = ""
) -> None:
    """422 naming where the NUL characters are (`unnamed` when no name was found)."""
    where = ", ".join(names) or unnamed
    await _reject(
        scope,
        receive,
        send,
        422,
        "The request is not valid",
        "NUL characters are not accepted in text" + (f": {where}" if where else ""),
        invalid=[{"name": n, "reason": "contains a NUL character"} for n in names],
    )


def _nul_parameters(scope: Scope) -> list[str]:
    """`query.<name>` of each query parameter with a NUL character in its name or value."""
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return sorted({f"query.{k}" for k, v in pairs if "\x00" in k or "\x00" in v})


def _nul_fields(body: bytes) -> list[str]:
    """Dotted paths of the JSON strings that hold a NUL character (none named for a body that
    is not JSON or is nested too deeply to walk: the refusal names the body)."""
    try:
        document = json.loads(body, strict=False)  # a raw NUL is a control character
    except (ValueError, RecursionError):
        return []
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            if "\x00" in value:
                found.append(path or "body")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}.{i}" if path else str(i))

    try:
        walk(document, "")
    except RecursionError:
        return []
    return found


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None past MAX_BODY_BYTES (a chunked body has no Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, original: Receive) -> Receive:
    """Hand the buffered body to the app, then the client's later messages (disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


class EdgeMiddleware:
    """Correlation id in and out, request metrics, and a cap on body size."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # labelled series by (method, route, status): prometheus_client's `labels()` checks
        # and locks on every call; the series are few (methods outside METHODS count as
        # OTHER, so a client cannot make new ones at will)
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _observe(self, method: str, path: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        series = self._series.get((method, path, status))
        if series is None:
            series = self._series[method, path, status] = (
                self.metrics.requests(method, path, str(status)),
                self.metrics.request_seconds(path),
            )
        series[0].inc()
        series[1].observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid, too_large = None, False
        for name, value in scope.get("headers", ()):
            if name == b"x-correlation-id":
                cid = value.decode("latin-1")[:128]
            elif name == b"content-length":
                # longer than 18 digits: left to the read, which stops past MAX_BODY_BYTES
                length = ascii_digits(value.decode("latin-1"), max_digits=18)
                too_large = too_large or (length is not None and length > MAX_BODY_BYTES)
        # a client's id is kept only if it is printable ASCII (space to `~`): what is echoed
        # back, logged, stored in events' metadata and sent in Kafka headers is then the bytes
        # it sent; any other (empty, a control character, a byte over 0x7f) is replaced by a
        # fresh UUID, which the answer's X-Correlation-ID gives
        if not cid or not (cid.isascii() and cid.isprintable()):
            cid = str(uuid.uuid4())
        token = logs.correlation_id.set(cid)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-correlation-id", cid.encode())]
            await send(message)

        try:
            admitted = await _admit(scope, receive, send_with_id, too_large=too_large)
            if admitted is None:
                return
            try:
                await self.app(scope, admitted, send_with_id)
            except Exception as exc:
                # A bug: log it with the correlation id, answer without internals.
                log.error("unhandled error", exc_info=exc)
                if started_response:
                    raise
                await problems.internal_error()(scope, admitted, send_with_id)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                self._observe(scope["method"], path, status, time.perf_counter() - started)
        finally:
            _access(scope, status, time.perf_counter() - started)
            logs.correlation_id.reset(token)


def _access(scope: Scope, status: int, seconds: float) -> None:
    """One access line a request (uvicorn's own access log is off: shared/logs.py), with the
    request's correlation id."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    method, path = scope["method"], scope["path"][:500]
    access_log.info(
        "%s %s %d",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "route": getattr(scope.get("route"), "path", None),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": f"{client[0]}:{client[1]}" if client else None,
        },
    )


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    await _reject(
        scope, receive, send, 413, "Body too large", f"bodies are limited to {MAX_BODY_BYTES} bytes"
    )


async def _admit(scope: Scope, receive: Receive, send: Send, *, too_large: bool) -> Receive | None:
    """The request's `receive` (its body read and checked when it has one), or None when it was
    refused here (413 for a body too large, 422 for NUL characters)."""
    if too_large:
        await _too_large(scope, receive, send)
        return None
    if b"%00" in scope.get("query_string", b"").lower() or "\x00" in scope["path"]:
        await _refuse_nul(scope, receive, send, _nul_parameters(scope))
        return None
    twice = query_repeats.repeated(scope)
    if twice:
        await _reject(
            scope,
            receive,
            send,
            422,
            "The request is not valid",
            f"send each of these query parameters once: {', '.join(twice)}",
            invalid=[{"name": n, "reason": "given more than once"} for n in twice],
        )
        return None
    if scope["method"] in ("POST", "PUT", "PATCH"):
        body = await _read_body(receive)
        if body is None:
            await _too_large(scope, receive, send)
            return None
        # PostgreSQL cannot store NUL in text: refuse it here, once, for every service
        if b"\\u0000" in body or b"\x00" in body:
            await _refuse_nul(scope, receive, send, _nul_fields(body), unnamed="body")
            return None
        return _replay(body, receive)
    return receive
