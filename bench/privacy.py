"""What sealing people costs (issue 20): the write of a record that names a person against the
same write without one, in the same run, and the pieces (crypto, subject lookup, reveal).

    python -m bench.privacy [--writes 400] [--pg system|embedded|URL]

1. Through the pledges API in this process (ASGI, no sockets; the server's work only): posting
   a need with a contact (name, email, phone: sealed under the contact's subject key, found or
   created in privacy_subjects in the write's transaction) against posting the same need
   without one, alternating, `--writes` of each; and reading each need back (a view that
   decrypts the contact) against a need without one. p50 / p99 / mean in ms.
2. The pieces, timed alone: AES-256-GCM encryption and decryption of a contact (µs), sealing a
   person whose subject exists (a fingerprint lookup and one UPDATE) and a new one (an INSERT).
Prints a table and writes bench/results/privacy.json; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench.common import environment, header, pg_server, say, summary, table, write_results
from services.pledges.app import create_app
from shared import db as dbmod
from shared import directory, privacy
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.pledges.conftest import seed_registry

CONTACT = {
    "name": "Olha Kravchenko",
    "role": "head of the municipal medical warehouse",
    "email": "o.kravchenko@city.kharkiv.example",
    "phone": "+380 57 700 1234",
}


def _need(n: int, *, contact: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "need_id": f"bench-{'c' if contact else 'p'}-{n}-{uuid.uuid4().hex[:6]}",
        "kind": "item",
        "category": "generators",
        "description": "Medium-sized generators for essential infrastructure",
        "quantity": "100",
        "unit": "pieces",
        "priority": "critical",
        "serves": ["heating"],
    }
    if contact:
        # a different person every 10 needs: most writes find their subject, some create one
        body["contact"] = {**CONTACT, "name": f"{CONTACT['name']} {n // 10}"}
    return body


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return (time.perf_counter() - started) * 1000


async def through_the_api(url: str, writes: int) -> dict[str, Any]:
    app = create_app(settings_for(url, rate_limit_per_second=0))
    async with app.router.lifespan_context(app):
        await seed_registry(url)
        token = await issue_key(url, organisation="kharkiv", roles=[Role.MEMBER])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://t",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            times: dict[str, list[float]] = {k: [] for k in ("write", "write+contact")}
            reads: dict[str, list[float]] = {k: [] for k in ("read", "read+contact")}
            made: dict[str, list[str]] = {"read": [], "read+contact": []}
            for n in range(-20, writes):  # 20 of each to warm up, not counted
                for contact in (False, True):
                    body = _need(n, contact=contact)

                    async def post(body: dict[str, Any] = body) -> None:
                        answer = await client.post("/v1/needs", json=body)
                        answer.raise_for_status()

                    ms = await _timed(post)
                    if n >= 0:
                        times["write+contact" if contact else "write"].append(ms)
                        made["read+contact" if contact else "read"].append(body["need_id"])
            for n in range(len(made["read"])):
                for kind in ("read", "read+contact"):
                    need_id = made[kind][n]

                    async def get(need_id: str = need_id) -> None:
                        answer = await client.get(f"/v1/needs/{need_id}")
                        answer.raise_for_status()

                    reads[kind].append(await _timed(get))
    return {k: summary(v, digits=2) for k, v in {**times, **reads}.items()}


async def pieces(url: str, n: int = 2000) -> dict[str, float]:
    key, sid = b"k" * 32, f"bench-{'0' * 32}"
    fields = {k: v for k, v in CONTACT.items() if k != "role"}
    started = time.perf_counter()
    for _ in range(n):
        sealed = privacy.encrypt(key, sid, fields)
    encrypt_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        privacy.decrypt(key, sid, sealed)
    decrypt_us = (time.perf_counter() - started) / n * 1e6
    conn = await asyncpg.connect(url)
    now = datetime.now(UTC)
    try:

        async def seal(name: str) -> None:
            await privacy.seal_person(
                conn,
                {**CONTACT, "name": name},
                service="bench",
                organisation="kharkiv",
                personal=("name", "email", "phone"),
                now=now,
            )

        started = time.perf_counter()
        for i in range(n // 4):
            await seal(f"new person {i}")
        new_us = (time.perf_counter() - started) / (n // 4) * 1e6
        started = time.perf_counter()
        for i in range(n // 4):
            await seal(f"new person {i}")
        existing_us = (time.perf_counter() - started) / (n // 4) * 1e6
    finally:
        await conn.close()
    return {
        "encrypt_us": round(encrypt_us, 1),
        "decrypt_us": round(decrypt_us, 1),
        "seal_new_subject_us": round(new_us, 1),
        "seal_known_subject_us": round(existing_us, 1),
    }


async def main_async(args: argparse.Namespace) -> None:
    server = pg_server(args.pg)
    env = await environment(server, args.pg)
    header(f"What sealing people costs: {args.writes} writes of each kind, one at a time", env)
    async with fresh_database(
        server, directory.SCHEMA, dbmod.schema_text("services.pledges")
    ) as url:
        api = await through_the_api(url, args.writes)
        parts = await pieces(url)
    rows = []
    for plain, sealed in (("write", "write+contact"), ("read", "read+contact")):
        a, b = api[plain], api[sealed]
        verb = "POST /v1/needs" if plain == "write" else "GET /v1/needs/{id}"
        rows.append([f"{verb} ({plain})", a["p50"], a["p99"], a["mean"]])
        rows.append([f"  with a contact ({sealed})", b["p50"], b["p99"], b["mean"]])
        rows.append(["  cost of the contact, mean ms", "", "", round(b["mean"] - a["mean"], 2)])
    say(table(["request", "p50 ms", "p99 ms", "mean ms"], rows))
    say()
    say(table(["piece", "µs"], [[k, v] for k, v in parts.items()]))
    if args.save:
        path = write_results(args.save, {"environment": env, "api_ms": api, "pieces": parts})
        say(f"\nwritten: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=400, help="writes of each kind")
    parser.add_argument("--pg", default="system", help="embedded | system | a server URL")
    parser.add_argument("--save", default="privacy", help="bench/results/NAME.json ('' to skip)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
