"""`twinaid audit` against a running registry: replay, compare, trace, export, tampering."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared import db as dbmod
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests.e2e.processes import Stack


@dataclass
class Running:
    url: str
    db: str
    auditor: str
    prefix: str
    kafka: str

    def audit(self, *args: str, expect: int = 0) -> str:
        command = [
            sys.executable,
            "-m",
            "services.cli",
            "--database",
            f"registry={self.db}",
            "audit",
            *args,
        ]
        env = {
            **os.environ,
            "DATABASE_URL": dbmod.with_database(self.db, "postgres"),
            "TWINAID_AUDIT_KEY": self.auditor,
        }
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout

    def replay(self, *args: str, expect: int = 0) -> dict[str, object]:
        out = self.audit(
            args[0],
            "--service",
            "registry",
            "--url",
            f"registry={self.url}",
            "--json",
            *args[1:],
            expect=expect,
        )
        [report] = json.loads(out)
        return dict(report)


@pytest.fixture
async def running(
    pg_server: str,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> AsyncIterator[Running]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as db:
        admin = await issue_key(db, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        auditor = await issue_key(db, organisation="cour-des-comptes", roles=[Role.AUDITOR])
        prefix = f"t{uuid.uuid4().hex[:8]}."
        stack = Stack(kafka=kafka_bootstrap, prefix=prefix, logs=tmp_path)
        try:
            url = stack.wait_ready(stack.api("registry", db))
            stack.worker("registry", db)
            headers = {"Authorization": f"Bearer {admin}"}
            async with httpx.AsyncClient(base_url=url, headers=headers) as c:
                for slug, name in (("bucha", "Bucha"), ("bergamo", "Bergamo")):
                    r = await c.post(
                        "/v1/organisations",
                        json={
                            "organisation_id": slug,
                            "name": name,
                            "kind": "municipality",
                            "country": "UA" if slug == "bucha" else "IT",
                        },
                    )
                    assert r.status_code == 201, r.text
                r = await c.post(
                    "/v1/partnerships",
                    json={
                        "partnership_id": "bucha-bergamo",
                        "organisations": ["bucha", "bergamo"],
                        "kind": "twinning",
                        "occurred_at": "2022-06-01T00:00:00Z",
                    },
                    headers={"X-Correlation-ID": "pact-2022"},
                )
                assert r.status_code == 201, r.text
                r = await c.post(
                    "/v1/partnerships/bucha-bergamo/transitions",
                    json={
                        "to": "signed",
                        "occurred_at": "2022-06-02T00:00:00Z",
                        "evidence": {"reference": "both councils' resolutions"},
                    },
                    headers={"X-Correlation-ID": "pact-2022"},
                )
                assert r.status_code == 200, r.text
            await _published(db, 4)
            yield Running(url, db, auditor, prefix, kafka_bootstrap)
        finally:
            stack.stop_all()


async def _published(db: str, n: int) -> None:
    """Wait until the relay signed a checkpoint and published the whole log, `n` facts plus
    that one checkpoint."""
    conn = await asyncpg.connect(db)
    try:
        for _ in range(200):
            relayed = await conn.fetchval("SELECT coalesce(max(position), 0) FROM relay_checkpoint")
            if relayed == n + 1 == await conn.fetchval("SELECT count(*) FROM events"):
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the relay did not publish in time")
    finally:
        await conn.close()


async def test_replay_verifies_the_chain_and_compare_finds_no_difference(
    running: Running,
) -> None:
    report = running.replay("replay")
    assert report["events"] == 5, "four facts and the relay's signed checkpoint"
    chain = report["chain"]
    assert chain["intact"] and chain["head_position"] == 5  # type: ignore[index]
    assert chain["checkpoints_checked"] == 1  # type: ignore[index]
    assert report["rows"] == {"organisations": 2, "partnerships": 1, "privacy_occurrences": 0}
    assert running.replay("compare")["differences"] == []


async def test_compare_lists_a_live_read_model_row_changed_behind_the_log(
    running: Running,
) -> None:
    conn = await asyncpg.connect(running.db)
    try:
        await conn.execute("UPDATE partnerships SET status = 'terminated'")
    finally:
        await conn.close()
    report = running.replay("compare", expect=1)
    assert report["differences"] == [
        {
            "service": "registry",
            "table": "partnerships",
            "key": {"partnership_id": "bucha-bergamo"},
            "kind": "differs",
            "column": "status",
            "live": "terminated",
            "rebuilt": "signed",
        }
    ]
    out = running.audit(
        "compare", "--service", "registry", "--url", f"registry={running.url}", expect=1
    )
    line = 'partnerships [partnership_id=bucha-bergamo] status: live "terminated", rebuilt "signed"'
    assert line in out, out


async def test_replay_from_kafka_reads_the_same_history_and_rebuilds_the_same_rows(
    running: Running,
) -> None:
    report = running.replay(
        "compare", "--source", "kafka", "--kafka", running.kafka, "--topic-prefix", running.prefix
    )
    assert report["events"] == 5
    chain = report["chain"]
    assert chain["intact"] and chain["head_position"] == 5  # type: ignore[index]
    assert report["differences"] == []


async def test_replay_names_the_position_of_a_row_modified_behind_the_application(
    running: Running,
) -> None:
    conn = await asyncpg.connect(running.db)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute("""UPDATE events SET data = jsonb_set(data::jsonb, '{name}', '"Milano"')
                              WHERE stream_id = 'organisation-bergamo'""")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
        position = await conn.fetchval(
            "SELECT c.position FROM event_chain c JOIN events e USING (event_id)"
            " WHERE e.stream_id = 'organisation-bergamo'"
        )
    finally:
        await conn.close()
    report = running.replay("replay", expect=1)
    assert report["chain"]["intact"] is False  # type: ignore[index]
    assert report["chain"]["bad_position"] == position  # type: ignore[index]


async def test_trace_prints_the_partnership_steps_in_time_order_with_who_did_them(
    running: Running,
) -> None:
    out = running.audit(
        "trace",
        "bucha-bergamo",
        "--service",
        "registry",
        "--url",
        f"registry={running.url}",
        "--json",
    )
    steps = json.loads(out)
    assert [s["event_type"] for s in steps] == [
        "registry.partnership-proposed",
        "registry.partnership-status-changed",
    ]
    assert {s["organisation"] for s in steps} == {"twinaid"}
    assert {s["correlation_id"] for s in steps} == {"pact-2022"}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_an_export_verifies_on_its_own_and_an_edited_line_is_caught(
    running: Running,
    tmp_path: Path,
    suffix: str,
) -> None:
    path = tmp_path / f"export{suffix}"
    running.audit(
        "export",
        "registry",
        str(path),
        "--url",
        f"registry={running.url}",
        "--stream-type",
        "partnership",
    )
    verdict = json.loads(running.audit("verify-export", str(path), "--json"))
    assert verdict["intact"] is True and verdict["checked"] == 2
    assert verdict["filtered"] is True and verdict["complete"] is False
    assert verdict["selection"] == {"stream_type": "partnership"}
    path.write_text(path.read_text().replace("2022-06-02", "2022-06-03"))
    result = json.loads(running.audit("verify-export", str(path), "--json", expect=1))
    assert result["intact"] is False and result["problem"].startswith("hash mismatch")
