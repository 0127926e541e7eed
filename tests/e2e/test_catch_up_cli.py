"""`twinaid catch-up`: a consumer catches up from the upstream's HTTP feed on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared import db as dbmod
from shared import directory
from shared.auth import Role
from shared.testing import fresh_database, issue_key, seal_everything
from tests.e2e.processes import Stack


async def test_catch_up_applies_what_the_broker_never_delivered(
    pg_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        fresh_database(pg_server, dbmod.schema_text("services.registry")) as registry_db,
        fresh_database(pg_server, directory.SCHEMA) as pledges_db,
    ):
        admin = await issue_key(registry_db, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        feed_key = await issue_key(registry_db, organisation="pledges", roles=[Role.SERVICE])
        stack = Stack(kafka="127.0.0.1:1", prefix="unused.", logs=tmp_path)
        try:
            url = stack.wait_ready(stack.api("registry", registry_db), timeout=30, path="/healthz")
            for slug in ("bucha", "irpin"):
                response = httpx.post(
                    f"{url}/v1/organisations",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={
                        "organisation_id": slug,
                        "name": slug.title(),
                        "kind": "municipality",
                        "country": "UA",
                    },
                )
                assert response.status_code == 201, response.text
            conn = await asyncpg.connect(registry_db)
            try:
                assert await seal_everything(conn) == 2  # no worker runs here
            finally:
                await conn.close()
            env = {"UPSTREAM_FEEDS": json.dumps({"registry": url}), "FEED_API_KEY": feed_key}
            run = [
                sys.executable,
                "-m",
                "services.cli",
                "--database",
                f"pledges={pledges_db}",
                "catch-up",
                "pledges",
                "--upstream",
                "registry",
            ]
            first = subprocess.run(
                run, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
            )
            assert first.returncode == 0, first.stderr
            assert "pledges: 2 events applied from registry's feed" in first.stdout
            again = subprocess.run(
                run, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
            )
            assert "pledges: 0 events applied from registry's feed" in again.stdout
        finally:
            stack.stop_all()
        conn = await asyncpg.connect(pledges_db)
        try:
            names = await conn.fetch("SELECT name FROM directory ORDER BY name")
        finally:
            await conn.close()
        assert [r["name"] for r in names] == ["Bucha", "Irpin"]
