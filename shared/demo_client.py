"""What the three demo loaders (services/<service>/demo) share: the keys that make a re-run safe,
how an answer is read or refused, and the command line that runs a loader against an API.

Each loader keeps its own order of writes and its own waits (pledges waits for the registry's
data, shipments for pledge lines, the registry for its rate limit); this is the common ground
under them, so that every demo re-runs alike and fails alike.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpx

S = TypeVar("S")


def digest(body: dict[str, Any]) -> str:
    """A short digest of a request body, stable across runs (keys sorted)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def key(kind: str, ident: str, body: dict[str, Any]) -> str:
    """An Idempotency-Key tied to the body: a retry replays the first answer, while edited demo
    data gets a new key (and a 409 if the record exists already) instead of a reused-key error."""
    return f"demo-{kind}-{ident}-{digest(body)}"


def keyed(kind: str, ident: str, body: dict[str, Any]) -> dict[str, str]:
    """The Idempotency-Key header of `key`."""
    return {"Idempotency-Key": key(kind, ident, body)}


def refused(what: str, response: httpx.Response) -> httpx.HTTPStatusError:
    """The error a loader raises for an answer it cannot take as "done" or "already done"."""
    return httpx.HTTPStatusError(
        f"{what}: {response.status_code} {response.text}",
        request=response.request,
        response=response,
    )


def replayed(response: httpx.Response) -> bool:
    """Whether the answer is the replay of an earlier write with the same Idempotency-Key."""
    return bool(response.headers.get("Idempotent-Replayed") == "true")


def found(what: str, response: httpx.Response) -> dict[str, Any] | None:
    """The record a GET answered; None when it does not exist yet (404)."""
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise refused(what, response)
    record: dict[str, Any] = response.json()
    return record


async def _load_from(
    url: str, api_key: str, load: Callable[[httpx.AsyncClient], Awaitable[S]], timeout: float
) -> S:
    async with httpx.AsyncClient(
        base_url=url, timeout=timeout, headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        return await load(client)


def main(
    argv: list[str] | None,
    *,
    service: str,
    doc: str | None,
    load: Callable[[httpx.AsyncClient], Awaitable[S]],
    report: Callable[[S], Iterable[str]],
    timeout: float = 10,
) -> int:
    """`python -m services.<service>.demo --url ... --key ...`: run `load` against the API with
    a registry_admin key, print its `report`; 1 (and why, on stderr) if a write was refused."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}.demo", description=doc)
    parser.add_argument("--url", required=True, help=f"the {service} API, http://host:port")
    parser.add_argument("--key", required=True, help="an API key with the registry_admin role")
    args = parser.parse_args(argv)
    try:
        summary = asyncio.run(_load_from(args.url, args.key, load, timeout))
    except httpx.HTTPError as exc:
        print(f"{service} demo data failed: {exc}", file=sys.stderr)
        return 1
    for line in report(summary):
        print(line)
    return 0
