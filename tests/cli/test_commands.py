"""Every `twinaid` command against real services: --json that parses wherever it prints, full
ids and hashes for people, trace's "not found", and keys only for registered organisations."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared import db as dbmod
from shared import signing
from shared.auth import parse_token
from tests.cli.conftest import Stack, twinaid

# the command's behaviour, not SQL that differs between PostgreSQL versions: one CI pass
pytestmark = pytest.mark.once

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def as_json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> Any:
    ran = twinaid(capsys, *argv)
    assert ran.code == code, ran.err
    return json.loads(ran.out)


def count_keys(url: str, organisation: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM api_keys WHERE organisation = $1", organisation
                )
            )
        finally:
            await conn.close()

    return asyncio.run(count())


async def drop(server: str, url: str) -> None:
    conn = await asyncpg.connect(dbmod.with_database(server, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbmod.database_name(url)}" WITH (FORCE)')
    finally:
        await conn.close()


def test_keys_are_issued_for_registered_organisations_only_and_listed_in_json(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, stack: Stack
) -> None:
    db = stack.database_flags()
    ran = twinaid(capsys, *db, "keys", "issue", "--organisation", "Charkiw", "--roles", "member")
    assert ran.code == 1 and ran.out == ""
    assert ran.err == (
        "twinaid: keys issue: no organisation 'Charkiw' in the registry (did you mean"
        " kharkiv?); register it first (POST /v1/organisations), or give only operator roles"
        " (auditor, registry_admin, service). Nothing was issued.\n"
    )
    ran = twinaid(capsys, *db, "keys", "issue", "--organisation", "atlantis", "--roles", "member")
    assert ran.code == 1 and "no organisation 'atlantis' in the registry;" in ran.err
    assert all(count_keys(url, "atlantis") == 0 for url in stack.databases.values())

    issued = as_json(
        capsys, *db, "keys", "issue", "--organisation", "kharkiv", "--roles", "member",
        "--label", "city hall", "--json",
    )  # fmt: skip
    assert isinstance(issued, dict)
    assert issued["organisation"] == "kharkiv" and issued["roles"] == ["member"]
    assert issued["token"].startswith(f"twa_{issued['key_id']}_")
    assert issued["services"] == ["registry", "pledges", "shipments"]
    # an operator's key may name the operator, which the registry does not hold
    operator = as_json(
        capsys, "--json", *db, "keys", "issue", "--organisation", "city-audit-office",
        "--roles", "auditor",
    )  # fmt: skip
    assert isinstance(operator, dict) and operator["organisation"] == "city-audit-office"

    listed = as_json(capsys, *db, "keys", "list", "--json")
    assert isinstance(listed, list)
    mine = next(k for k in listed if k["key_id"] == issued["key_id"])
    assert mine["label"] == "city hall" and mine["revoked_at"] is None
    assert parse_token(issued["token"])[1] not in json.dumps(listed)
    text = twinaid(capsys, *db, "keys", "list").out
    assert any(line.startswith(issued["key_id"]) and "active" in line for line in text.splitlines())

    revoked = as_json(capsys, *db, "keys", "revoke", issued["key_id"], "--json")
    assert revoked == {"key_id": issued["key_id"], "revoked_in": list(stack.databases)}
    ran = twinaid(capsys, *db, "keys", "revoke", issued["key_id"])
    assert (ran.code, ran.err) == (1, f"twinaid: no active key {issued['key_id']}\n")
    listed = as_json(capsys, *db, "keys", "list", "--json")
    assert next(k for k in listed if k["key_id"] == issued["key_id"])["status"] == "revoked"


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(url, sql, *args))


def status_at(stack: Stack, service: str, token: str) -> int:
    path = {"registry": "/v1/organisations", "pledges": "/v1/pledges"}[service]
    return httpx.get(
        stack.urls[service] + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code


def test_key_changes_are_events_of_the_registry_s_log_with_the_operator_as_actor(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, stack: Stack
) -> None:
    """`keys issue` and `keys revoke` are auditable like the HTTP routes: an event of the
    registry's log each, the operator its actor; the key works (and stops) at once in every
    service; `--expires` takes a duration or an instant."""
    db = stack.database_flags()
    before = datetime.now(UTC)
    issued = as_json(
        capsys, *db, "keys", "issue", "--organisation", "lille", "--roles", "member",
        "--label", "ERP sync", "--expires", "90d", "--json",
    )  # fmt: skip
    expires = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(days=90) <= expires - before < timedelta(days=90, minutes=1)
    key_id, token = issued["key_id"], issued["token"]
    for url in stack.databases.values():
        [row] = fetch(url, "SELECT expires_at, label FROM api_keys WHERE key_id = $1", key_id)
        assert (row["expires_at"], row["label"]) == (expires, "ERP sync")
    # works at once everywhere (make run's bootstrap needs no relay)
    assert status_at(stack, "registry", token) == 200
    assert status_at(stack, "pledges", token) == 200

    [event] = fetch(
        stack.databases["registry"],
        "SELECT event_type, data, metadata FROM events WHERE stream_id = $1",
        f"api_key-{key_id}",
    )
    data, metadata = json.loads(event["data"]), json.loads(event["metadata"])
    assert event["event_type"] == "registry.api-key-issued"
    assert data["organisation_id"] == "lille" and data["roles"] == ["member"]
    assert datetime.fromisoformat(data["expires_at"]) == expires
    assert data["by"]["key_id"].startswith("operator:") and data["by"]["organisation"] == "twinaid"
    assert metadata["actor"] == f"twinaid keys issue ({data['by']['key_id']})"
    assert parse_token(token)[1] not in event["data"]

    # an instant; never (the default); refused when not ahead
    at = as_json(
        capsys, *db, "keys", "issue", "--organisation", "lille", "--roles", "logistics",
        "--expires", "2031-05-01T12:00:00Z", "--json",
    )  # fmt: skip
    assert at["expires_at"] == "2031-05-01T12:00:00Z"
    operator = as_json(
        capsys, *db, "keys", "issue", "--organisation", "twinaid", "--roles", "service", "--json"
    )
    assert operator["expires_at"] is None
    [logged] = fetch(
        stack.databases["registry"],
        "SELECT data FROM events WHERE stream_id = $1",
        f"api_key-{operator['key_id']}",
    )
    assert json.loads(logged["data"])["expires_at"] is None
    for wrong in ("2001-01-01", "soon", "0d"):
        ran = twinaid(capsys, *db, "keys", "issue", "--organisation", "lille", "--roles",
                      "member", "--expires", wrong)  # fmt: skip
        assert ran.code == 2 and "--expires" in ran.err, ran.err

    revoked = as_json(capsys, *db, "keys", "revoke", key_id, "--reason", "ERP replaced", "--json")
    assert revoked == {"key_id": key_id, "revoked_in": list(stack.databases)}
    assert status_at(stack, "registry", token) == 401
    assert status_at(stack, "pledges", token) == 401
    types = fetch(
        stack.databases["registry"],
        "SELECT event_type, data FROM events WHERE stream_id = $1 ORDER BY stream_version",
        f"api_key-{key_id}",
    )
    assert [t["event_type"] for t in types] == [
        "registry.api-key-issued",
        "registry.api-key-revoked",
    ]
    assert json.loads(types[1]["data"])["reason"] == "ERP replaced"
    # the same revocation arriving from the log later changes nothing in pledges' copy
    revoked_at = {
        s: fetch(url, "SELECT revoked_at FROM api_keys WHERE key_id = $1", key_id)[0][0]
        for s, url in stack.databases.items()
    }
    assert len(set(revoked_at.values())) == 1


def test_keys_list_shows_expiry_and_the_latest_use_in_any_service(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, stack: Stack
) -> None:
    db = stack.database_flags()
    issued = as_json(
        capsys, *db, "keys", "issue", "--organisation", "kharkiv", "--roles", "member",
        "--label", "warehouse", "--expires", "2031-05-01", "--json",
    )  # fmt: skip
    key_id = issued["key_id"]
    # used long ago at the registry, and now at pledges only
    fetch(
        stack.databases["registry"],
        "UPDATE api_keys SET last_used_at = '2026-01-02T03:04:05Z' WHERE key_id = $1",
        key_id,
    )
    assert status_at(stack, "pledges", issued["token"]) == 200
    deadline = time.monotonic() + 10
    while True:
        listed = as_json(capsys, *db, "keys", "list", "--json")
        mine = next(k for k in listed if k["key_id"] == key_id)
        if "pledges" in mine["last_used_in"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pledges_use = datetime.fromisoformat(mine["last_used_in"]["pledges"])
    assert datetime.fromisoformat(mine["last_used_at"]) == pledges_use
    assert mine["last_used_in"]["registry"] == "2026-01-02T03:04:05Z"
    assert mine["expires_at"] == "2031-05-01T00:00:00Z"
    assert mine["status"] == "active"

    text = twinaid(capsys, *db, "keys", "list").out
    header, *lines = text.splitlines()
    assert header.split() == [
        "key", "id", "organisation", "roles", "label", "status", "expires", "last", "used",
        "services",
    ]  # fmt: skip
    [line] = [line for line in lines if line.startswith(key_id + " ")]
    assert line.split() == [
        key_id, "kharkiv", "member", "warehouse", "active", "2031-05-01T00:00:00Z",
        pledges_use.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "registry,pledges,shipments",
    ]  # fmt: skip
    # full ids, never cut: a never-used operator key with a long organisation id
    long_org = "city-audit-office-of-the-municipality-of-lille"
    other = as_json(
        capsys, *db, "keys", "issue", "--organisation", long_org, "--roles", "auditor", "--json"
    )
    text = twinaid(capsys, *db, "keys", "list").out
    [line] = [line for line in text.splitlines() if line.startswith(other["key_id"] + " ")]
    assert line.split()[1] == long_org and line.split()[5:7] == ["never", "-"]


def test_trace_shows_full_ids_and_when_each_step_was_recorded_or_says_not_found(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, stack: Stack
) -> None:
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    environment.setenv("TWINAID_AUDIT_KEY", stack.auditor)
    steps = as_json(capsys, "audit", "trace", "lille-kharkiv", "--json")
    assert isinstance(steps, list) and steps
    [step] = [s for s in steps if s["event_type"] == "registry.partnership-proposed"]
    assert step["correlation_id"] == "pact-1978" and HEX64.fullmatch(step["hash"])
    text = twinaid(capsys, "audit", "trace", "lille-kharkiv").out
    header, *lines = text.splitlines()
    assert "occurred at" in header and "recorded at" in header
    line = next(line for line in lines if "registry.partnership-proposed" in line)
    assert step["recorded_at"] in line and step["occurred_at"] in line
    assert f" {step['stream_id']} " in line

    ran = twinaid(capsys, "audit", "trace", "no-such-record-anywhere")
    assert ran.code == 1 and ran.out == ""
    assert ran.err == (
        "twinaid: audit trace: no-such-record-anywhere not found in the history of registry,"
        " pledges, shipments\n"
    )
    assert as_json(capsys, "audit", "trace", "no-such-record-anywhere", "--json", code=1) == []


def test_replay_compare_and_export_answer_json_and_show_whole_hashes(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    environment.setenv("TWINAID_API_KEY", stack.auditor)
    environment.setenv("DATABASE_URL", stack.server)
    db = stack.database_flags()
    for action in ("replay", "compare"):
        [report] = as_json(capsys, *db, "audit", action, "--service", "registry", "--json")
        assert report["chain"]["intact"] is True and report["events"] >= 3
        assert report["differences"] == []
    text = twinaid(capsys, *db, "audit", "replay", "--service", "registry").out
    assert f"head {report['chain']['head_hash']}," in text

    out = tmp_path / "registry.jsonl"
    exported = as_json(capsys, "audit", "export", "registry", str(out), "--json")
    assert exported == {
        "exported": report["events"],
        "file": str(out),
        "format": "jsonl",
        "sha256": exported["sha256"],
    }
    assert re.fullmatch(HEX64, exported["sha256"])
    verdict = as_json(capsys, "audit", "verify-export", str(out), "--json")
    assert verdict["intact"] is True and verdict["checked"] == report["events"]
    assert verdict["complete"] is True and verdict["filtered"] is False
    assert verdict["trusted_keys"] is True and verdict["warnings"] == []
    assert verdict["sha256"] == exported["sha256"]
    ran = twinaid(capsys, "audit", "export", "registry", str(tmp_path / "r.csv"))
    assert ran.out.startswith(
        f"{report['events']} events of registry exported to {tmp_path / 'r.csv'} (csv);"
        " its digest (verify-export shows it): sha256 "
    )
    digest = ran.out.split()[-1]
    assert (
        as_json(capsys, "audit", "verify-export", str(tmp_path / "r.csv"), "--json")["sha256"]
        == digest
    )


def test_the_database_commands_answer_json(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    db = stack.database_flags()
    rebuilt = as_json(capsys, *db, "--json", "rebuild", "registry")
    assert isinstance(rebuilt, dict) and rebuilt["events_replayed"] >= 3
    assert rebuilt["rows"]["organisations"] == 2
    listed = as_json(capsys, *db, "migrate", "--list", "--service", "registry", "--json")
    assert isinstance(listed, dict) and listed["registry"]
    assert all(m["applied_at"] for m in listed["registry"])
    assert as_json(capsys, *db, "migrate", "--service", "registry", "--json") == {
        "registry": {"applied": []}
    }
    # the shipments service catches up on the registry's feed: URL and key from the environment
    environment.setenv("TWINAID_REGISTRY_URL", stack.urls["registry"])
    environment.setenv("TWINAID_API_KEY", stack.service_key)
    environment.delenv("UPSTREAM_FEEDS", raising=False)
    environment.delenv("FEED_API_KEY", raising=False)
    caught = as_json(capsys, *db, "catch-up", "shipments", "--upstream", "registry", "--json")
    assert isinstance(caught, dict) and caught["service"] == "shipments"
    assert caught["applied"]["registry"] >= 3

    key_file = tmp_path / "shipments.ed25519"
    pin = as_json(capsys, "keys", "signing-pin", "shipments", "--key-file", str(key_file), "--json")
    assert pin == {
        "service": "shipments",
        "key_file": str(key_file),
        "public_key": signing.Signer.from_file(key_file).public_key,
    }
    rotated = as_json(
        capsys, *db, "keys", "rotate-signing", "shipments", "--key-file", str(key_file), "--json"
    )
    assert isinstance(rotated, dict) and rotated["previous_public_key"] == pin["public_key"]
    assert rotated["public_key"] == signing.Signer.from_file(key_file).public_key

    written = as_json(capsys, "contracts", "--out", str(tmp_path / "schemas"), "--json")
    assert isinstance(written, dict) and written["written"]
    assert all(Path(p).is_relative_to(tmp_path) and Path(p).exists() for p in written["written"])

    backup = tmp_path / "backup"
    manifest = as_json(
        capsys, *db, "backup", str(backup), "--service", "registry", "--without-keys", "--json"
    )
    assert isinstance(manifest, dict) and manifest["services"]["registry"]["events"] >= 3
    head = manifest["services"]["registry"]["head"]["hash"]
    target = dbmod.with_database(stack.server, f"t_cli_{uuid.uuid4().hex[:8]}")
    try:
        restored = as_json(
            capsys, "--database", f"registry={target}",
            "restore", str(backup), "--service", "registry", "--json",
        )  # fmt: skip
        assert isinstance(restored, dict) and restored["ok"] is True
        assert restored["services"][0]["head"]["hash"] == head
    finally:
        asyncio.run(drop(stack.server, target))


def test_the_standards_exports_answer_json(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    environment.setenv("TWINAID_API_KEY", stack.auditor)
    out = tmp_path / "kharkiv.xml"
    summary = as_json(
        capsys, "export", "iati", "--organisation", "kharkiv", "--out", str(out), "--json"
    )
    assert isinstance(summary, dict) and summary["file"] == str(out)
    assert summary["bytes"] == out.stat().st_size and out.read_text().startswith("<?xml")
    assert summary["url"] == f"{stack.urls['pledges']}/v1/exports/iati"
    inline = as_json(capsys, "--json", "export", "--format", "iati", "--organisation", "kharkiv")
    assert isinstance(inline, dict) and inline["document"].startswith("<?xml")
    ran = twinaid(capsys, "export", "epcis", "--convoy", "no-such-convoy", "--json")
    assert ran.code == 1 and ran.out == "" and " 404 " in ran.err and ran.err.count("\n") == 1
