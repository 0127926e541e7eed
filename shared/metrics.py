"""Prometheus metrics, one registry per process (built by the composition root), and the small
HTTP endpoint that serves them apart from an API (METRICS_PORT) and a worker's probes.

`/metrics` asks for `Authorization: Bearer <METRICS_TOKEN>` when that setting is given, on
whichever port it is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from pydantic import SecretStr

from shared.errors import Unauthenticated

M = TypeVar("M", Counter, Gauge, Histogram)


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        # the standard series: process_* (CPU, memory, open fds, start time), python_info,
        # python_gc_* (see shared/runtime.py)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        series, own = self._series, self._own
        self.requests = series(
            Counter, "twinaid_http_requests", "HTTP requests", "method", "route", "status"
        ).labels
        self.request_seconds = series(
            Histogram, "twinaid_http_request_seconds", "HTTP request duration", "route"
        ).labels
        self.appends = own(
            Counter,
            "twinaid_events_committed",
            "Events appended and committed to the log (counted by the sealer)",
        )
        self.relay_published = own(
            Counter, "twinaid_relay_published", "Events published by the relay"
        )
        self.relay_lag_events = own(
            Gauge, "twinaid_relay_lag_events", "Committed events not yet published"
        )
        self.relay_lag_seconds = own(
            Gauge, "twinaid_relay_lag_seconds", "Age of the oldest unpublished event"
        )
        self.consumer_lag = series(
            Gauge,
            "twinaid_consumer_lag_events",
            "Upstream events seen but not yet contiguous",
            "service",
            "upstream",
        ).labels
        # a committed event the sealer cannot seal (shared/sealer.py Watch): 1 with its
        # position, event id and reason as labels while it blocks the chain
        self.sealer_blocked = series(
            Gauge,
            "twinaid_sealer_blocked",
            "1 while a committed event cannot be sealed: nothing after it is published",
            "service",
            "position",
            "event_id",
            "reason",
        )
        self.sealer_blocked_position = own(
            Gauge,
            "twinaid_sealer_blocked_position",
            "Chain position of the event the sealer cannot seal; 0 when none",
        )
        self.sealer_failures = own(
            Counter,
            "twinaid_sealer_failures",
            "Sealing rounds stopped by an event the chain cannot seal",
        )
        self.quarantined = series(
            Counter,
            "twinaid_quarantined",
            "Upstream messages quarantined: not authentic, inconsistent or implausible",
            "service",
            "upstream",
        )
        self.dead_letters = own(
            Counter, "twinaid_dead_letters", "Messages sent to the dead-letter table"
        )
        self.group_commit_batches = series(
            Counter,
            "twinaid_group_commit_batches",
            "Statements run by a group commit (shared/batching.py)",
            "kind",
        ).labels
        self.group_commit_items = series(
            Counter,
            "twinaid_group_commit_items",
            "Writes those statements carried (items / batches: the mean batch)",
            "kind",
        ).labels

    def _series(self, kind: type[M], name: str, documentation: str, *labels: str) -> M:
        """A metric of this process's registry taking `labels`."""
        return kind(name, documentation, labels, registry=self.registry)

    def _own(self, kind: type[M], name: str, documentation: str) -> M:
        """A metric labelled with this process's service only: that label given once here."""
        return self._series(kind, name, documentation, "service").labels(service=self.service)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# a response of the small endpoint: status, content type, body, extra headers
Answer = tuple[int, str, bytes, dict[str, str]]
Route = Callable[[str, dict[str, str]], Awaitable[Answer]]
PROBLEM = "application/problem+json"


def scrape_allowed(token: SecretStr | None, authorization: str | None) -> bool:
    """Whether a request for /metrics may have them: always without a token, else only with
    `Authorization: Bearer <token>` (compared in constant time)."""
    if token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def refused() -> Unauthenticated:
    return Unauthenticated(
        "/metrics needs Authorization: Bearer <METRICS_TOKEN>",
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


def metrics_answer(metrics: Metrics, token: SecretStr | None, headers: dict[str, str]) -> Answer:
    if not scrape_allowed(token, headers.get("authorization")):
        problem = refused()
        return 401, PROBLEM, json.dumps(problem.problem()).encode(), problem.headers
    return 200, CONTENT_TYPE_LATEST, metrics.exposition(), {}


def not_found(path: str) -> Answer:
    body = {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": f"nothing at {path[:100]}",
    }
    return 404, PROBLEM, json.dumps(body).encode(), {}


def metrics_only(metrics: Metrics, token: SecretStr | None) -> Route:
    """The routes of an API's separate metrics port: /metrics, nothing else."""

    async def route(path: str, headers: dict[str, str]) -> Answer:
        if path == "/metrics":
            return metrics_answer(metrics, token, headers)
        return not_found(path)

    return route


async def serve(host: str, port: int, route: Route) -> asyncio.Server:
    """A minimal HTTP/1.1 server (GET, one request a connection) answering `route(path,
    headers)`: for scrapes and probes, which need no framework."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                method, path, headers = await _request(reader)
                if method not in ("GET", "HEAD"):
                    code, kind, body, extra = 405, PROBLEM, b"", {"Allow": "GET, HEAD"}
                else:
                    code, kind, body, extra = await route(path, headers)
                head = [
                    f"HTTP/1.1 {code} {HTTPStatus(code).phrase}",
                    f"Content-Type: {kind}",
                    f"Content-Length: {len(body)}",
                    "Connection: close",
                    *(f"{name}: {value}" for name, value in extra.items()),
                ]
                writer.write("\r\n".join(head).encode() + b"\r\n\r\n")
                if method != "HEAD":
                    writer.write(body)
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)


async def _request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """The method, path (without its query) and headers (names in lower case) of a request."""
    method, _, rest = (await reader.readline()).decode("latin-1").partition(" ")
    path = rest.partition(" ")[0].partition("?")[0]
    headers: dict[str, str] = {}
    for _ in range(100):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers
