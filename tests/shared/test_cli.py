"""The `twinaid` command on real databases: keys valid in every service, and rebuilds."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import asyncpg
import pytest

from services.registry import commands, domain, handlers
from shared.auth import Authenticator, Principal, Role, parse_token
from shared.db import schema_text
from shared.errors import Unauthenticated
from shared.events import Metadata
from shared.settings import SERVICES
from shared.testing import fresh_database


@pytest.fixture
async def service_dbs(pg_server: str) -> AsyncIterator[dict[str, str]]:
    """A fresh database per service, each with its own schema."""
    async with AsyncExitStack() as stack:
        yield {
            service: await stack.enter_async_context(
                fresh_database(pg_server, schema_text(f"services.{service}"))
            )
            for service in SERVICES
        }


async def twinaid(dbs: dict[str, str], *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    overrides = [a for service, url in dbs.items() for a in ("--database", f"{service}={url}")]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *overrides, *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def principal(url: str, token: str) -> Principal | None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        return await Authenticator(pool, ttl=0).authenticate(f"Bearer {token}")
    except Unauthenticated:
        return None
    finally:
        await pool.close()


async def register(registry_url: str, organisation_id: str, name: str, country: str) -> None:
    conn = await asyncpg.connect(registry_url)
    try:
        command = domain.RegisterOrganisation(
            organisation_id=organisation_id, name=name,
            kind=domain.OrganisationKind.MUNICIPALITY, country=country,
        )  # fmt: skip
        async with conn.transaction():
            await handlers.run(
                conn,
                commands.RegisterOrganisation(command),
                metadata=Metadata(actor="test"),
                now=datetime.now(UTC),
            )
    finally:
        await conn.close()


async def test_an_issued_key_works_in_every_service_until_it_is_revoked(
    service_dbs: dict[str, str],
) -> None:
    await register(service_dbs["registry"], "lille", "Lille", "FR")
    code, out, err = await twinaid(
        service_dbs, "keys", "issue", "--organisation", "lille", "--roles", "member,logistics",
        "--label", "convoys",
    )  # fmt: skip
    assert code == 0, err
    token = out.strip()
    key_id, secret = parse_token(token)
    for url in service_dbs.values():
        who = await principal(url, token)
        assert who is not None
        assert (who.key_id, who.organisation) == (key_id, "lille")
        assert who.roles == {Role.MEMBER, Role.LOGISTICS}

    code, listing, _ = await twinaid(service_dbs, "keys", "list")
    assert code == 0
    line = next(line for line in listing.splitlines() if line.startswith(key_id))
    assert "lille" in line and "convoys" in line and "active" in line
    assert "registry,pledges,shipments" in line
    assert secret not in listing

    code, out, err = await twinaid(service_dbs, "keys", "revoke", key_id)
    assert code == 0, err
    for url in service_dbs.values():
        assert await principal(url, token) is None
    code, listing, _ = await twinaid(service_dbs, "keys", "list")
    assert "revoked" in next(line for line in listing.splitlines() if line.startswith(key_id))

    code, _, err = await twinaid(service_dbs, "keys", "revoke", key_id)
    assert code == 1
    assert "no active key" in err


async def test_issuing_with_an_unknown_role_fails_and_stores_nothing(
    service_dbs: dict[str, str],
) -> None:
    code, out, err = await twinaid(
        service_dbs, "keys", "issue", "--organisation", "lille", "--roles", "member,mayor"
    )
    assert code != 0
    assert "mayor" in err
    assert out == ""
    for url in service_dbs.values():
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0
        finally:
            await conn.close()


async def test_rebuild_restores_the_registry_read_models_from_the_log(
    service_dbs: dict[str, str],
) -> None:
    conn = await asyncpg.connect(service_dbs["registry"])
    try:
        for org_id, name, country in (("lille", "Lille", "FR"), ("kharkiv", "Kharkiv", "UA")):
            command = domain.RegisterOrganisation(
                organisation_id=org_id, name=name, kind=domain.OrganisationKind.MUNICIPALITY,
                country=country, aliases=("Charkiw",) if org_id == "kharkiv" else (),
            )  # fmt: skip
            async with conn.transaction():
                await handlers.run(
                    conn,
                    commands.RegisterOrganisation(command),
                    metadata=Metadata(actor="test"),
                    now=datetime.now(UTC),
                )
        before = [dict(r) for r in await conn.fetch("SELECT * FROM organisations ORDER BY 1")]
        await conn.execute("DELETE FROM organisations WHERE organisation_id = 'lille'")
        await conn.execute("UPDATE organisations SET name = 'tampered', aliases = '{}'")

        code, out, err = await twinaid(service_dbs, "rebuild", "registry")

        assert code == 0, err
        assert "2 events replayed" in out and "organisations: 2 rows" in out
        after = [dict(r) for r in await conn.fetch("SELECT * FROM organisations ORDER BY 1")]
        assert after == before
    finally:
        await conn.close()


async def test_rebuild_of_a_service_without_read_models_replays_nothing_and_succeeds(
    service_dbs: dict[str, str],
) -> None:
    code, out, err = await twinaid(service_dbs, "rebuild", "shipments")
    assert code == 0, err
    assert "rebuilt shipments: 0 events replayed" in out
