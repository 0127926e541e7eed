"""`twinaid audit verify-export` against an export whose tail was cut and whose trailer was
rewritten with a genuine signed head: the data of a chain checkpoint of the log, which signs an
earlier head (the outside tester's forgery). Offline a head signed earlier cannot be told from
the latest: the verdict says as of when it is complete, warns when that is well before the
export was made, and refuses a head older than a checkpoint the export itself holds. Real
commands on the registry's log (real PostgreSQL), checkpoints signed with the service's key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared import signing
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.testing import seal_everything
from tests.cli.conftest import Stack, twinaid
from tests.cli.test_verify_export_forgeries import lines_of, resealed_trailer, verify, write
from tests.conftest import SESSION_SIGNER

pytestmark = pytest.mark.once


async def _organisations(stack: Stack, n: int) -> None:
    headers = {"Authorization": f"Bearer {stack.admin}"}
    async with httpx.AsyncClient(base_url=stack.urls["registry"], headers=headers) as http:
        for _ in range(n):
            slug = f"town-{uuid.uuid4().hex[:8]}"
            body = {"organisation_id": slug, "name": f"Town {slug}", "kind": "municipality"}
            response = await http.post("/v1/organisations", json={**body, "country": "PL"})
            assert response.status_code == 201, response.text


async def _checkpoint(stack: Stack, at: datetime) -> int:
    """What the relay does (shared/outbox.py): the sealed head signed with the service's key and
    appended as an `audit.chain-checkpoint`; returns the position it signs."""
    conn = await asyncpg.connect(stack.databases["registry"])
    try:
        await seal_everything(conn)
        async with conn.transaction():
            store = PostgresEventStore(conn)
            position, head = await store.head()
            stream = "checkpoint-registry"
            await store.append(
                stream_type=signing.STREAM_TYPE,
                stream_id=stream,
                expected_version=await store.current_version(stream),
                events=[
                    NewEvent(
                        signing.CHECKPOINT,
                        SESSION_SIGNER.checkpoint(
                            service="registry", position=position, head=head, at=at
                        ),
                    )
                ],
                metadata=Metadata(actor="registry-relay"),
                now=at,
            )
        await seal_everything(conn)
    finally:
        await conn.close()
    return position


@pytest.fixture
def checkpointed(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> tuple[Path, int, int]:
    """An unfiltered export of the registry's log holding two checkpoints: the first signed an
    hour ago, the second (later in the log) signed two hours ago by a relay whose clock went
    back; events after each. Returns the export and the positions each checkpoint signs."""
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    environment.setenv("TWINAID_API_KEY", stack.auditor)
    now = datetime.now(UTC)

    async def build() -> tuple[int, int]:
        await _organisations(stack, 2)
        first = await _checkpoint(stack, now - timedelta(hours=1))
        await _organisations(stack, 2)
        second = await _checkpoint(stack, now - timedelta(hours=2))
        await _organisations(stack, 2)
        conn = await asyncpg.connect(stack.databases["registry"])
        try:
            await seal_everything(conn)
        finally:
            await conn.close()
        return first, second

    first, second = asyncio.run(build())
    path = tmp_path / "registry.jsonl"
    ran = twinaid(capsys, "audit", "export", "registry", str(path), "--json")
    assert ran.code == 0, ran.err
    return path, first, second


def cut_at(records: list[dict[str, Any]], signs: int) -> list[dict[str, Any]]:
    """forge.py: every line after `signs` cut, the trailer rewritten to end there and to carry,
    as its signed head, the data of the checkpoint that signs `signs` (a genuine signature)."""
    header, *events, trailer = records
    checkpoint = next(
        e["data"]
        for e in events
        if e["event_type"] == signing.CHECKPOINT and e["data"]["position"] == signs
    )
    kept = [e for e in events if e["position"] <= signs]
    return resealed_trailer(
        [
            header,
            *kept,
            {
                **trailer,
                "head_position": signs,
                "head_hash": kept[-1]["hash"],
                "signed_head": checkpoint,
            },
        ]
    )


async def _sealed(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.databases["registry"])
    try:
        await seal_everything(conn)
    finally:
        await conn.close()


def test_a_whole_export_says_as_of_when_it_is_complete(
    capsys: pytest.CaptureFixture[str],
    checkpointed: tuple[Path, int, int],
    stack: Stack,
) -> None:
    path, _, _ = checkpointed
    records = lines_of(path)
    made = datetime.fromisoformat(records[0]["exported_at"])
    verdict = verify(capsys, path, code=0)
    assert verdict["intact"] is True and verdict["complete"] is True, verdict
    assert verdict["warnings"] == [] and verdict["checkpoints_checked"] >= 2, verdict
    signed_at = datetime.fromisoformat(verdict["head_signed_at"])
    assert signed_at >= made - timedelta(seconds=5), verdict  # signed as it was written
    assert verdict["exported_at"] == records[0]["exported_at"]
    assert verdict["complete_as_of"].startswith(
        f"complete as of {verdict['head_signed_at']}, position {verdict['head_position']}"
    ), verdict
    # against the live log: it holds the head, nothing after it
    live = verify(capsys, path, "--against-live", code=0)
    assert live["intact"] is True and live["warnings"] == [], live
    assert live["live"]["has_head"] is True and live["live"]["next_position"] is None, live
    # an event appended since the export was made: a warning, still intact
    asyncio.run(_organisations(stack, 1))
    asyncio.run(_sealed(stack))
    live = verify(capsys, path, "--against-live", code=0)
    assert live["live"]["next_position"] == verdict["head_position"] + 1, live
    assert any("appended since the export was made" in w for w in live["warnings"]), live
    # a log that does not hold the export's head: pledges' asked as if it were the registry's
    other = f"registry={stack.urls['pledges']}"
    live = verify(capsys, path, "--against-live", "--url", other, code=1)
    assert "does not hold the export's head" in live["problem"], live


def test_a_cut_tail_signed_by_an_older_checkpoint_is_complete_only_as_of_it(
    capsys: pytest.CaptureFixture[str], checkpointed: tuple[Path, int, int], tmp_path: Path
) -> None:
    path, first, _ = checkpointed
    records = lines_of(path)
    signed = next(e["data"] for e in records[1:-1] if e.get("data", {}).get("position") == first)
    cut = write(tmp_path / "cut.jsonl", cut_at(records, first))
    verdict = verify(capsys, cut, code=0)
    # offline, a genuine head signed an hour ago cannot be told from the newest: it says so
    assert verdict["complete"] is True and verdict["head_position"] == first, verdict
    assert verdict["head_signed_at"] == signed["signed_at"], verdict
    assert (
        f"complete as of {signed['signed_at']}, position {first}" in (verdict["complete_as_of"])
    ), verdict
    assert any(
        "well before the export says it was made" in w and "may have been cut" in w
        for w in verdict["warnings"]
    ), verdict
    # against the live log: the event after the cut head was recorded before the export
    verdict = verify(capsys, cut, "--against-live", code=1)
    assert verdict["intact"] is False and verdict["complete"] is False, verdict
    assert verdict["live"]["has_head"] is True, verdict
    assert verdict["live"]["next_position"] == first + 1, verdict
    assert f"the live log's position {first + 1} was recorded at" in verdict["problem"]
    assert "before the export was made" in verdict["problem"], verdict
    assert verdict["problem"].endswith("its tail was cut"), verdict


def test_a_signed_head_older_than_a_checkpoint_of_the_export_is_not_intact(
    capsys: pytest.CaptureFixture[str], checkpointed: tuple[Path, int, int], tmp_path: Path
) -> None:
    path, first, second = checkpointed
    records = lines_of(path)
    # cut after the second checkpoint's head: the first checkpoint stays in the export, signed
    # an hour after the head now claimed to be the newest
    cut = write(tmp_path / "cut.jsonl", cut_at(records, second))
    verdict = verify(capsys, cut, code=1)
    assert verdict["intact"] is False and verdict["complete"] is False, verdict
    assert "is not the log's newest head, the end was cut" in verdict["problem"], verdict
    named = verdict["problem"].split("is older than the checkpoint on line ")[1]
    line = int(named.split(" ")[0])
    held = lines_of(cut)[line - 1]  # the checkpoint named is one the export holds ...
    assert held["event_type"] == signing.CHECKPOINT, verdict
    assert held["data"]["position"] <= first < second, verdict  # ... from before the cut head
    older = datetime.fromisoformat(lines_of(cut)[-1]["signed_head"]["signed_at"])
    assert datetime.fromisoformat(held["data"]["signed_at"]) > older, verdict


def test_a_headerless_export_with_gaps_is_not_intact_unless_said_filtered(
    capsys: pytest.CaptureFixture[str], checkpointed: tuple[Path, int, int], tmp_path: Path
) -> None:
    path, _, _ = checkpointed
    events = lines_of(path)[1:-1]
    # header and trailer stripped, a line deleted: the downgrade
    stripped = write(tmp_path / "s.jsonl", events[:3] + events[4:])
    verdict = verify(capsys, stripped, code=1)
    assert verdict["intact"] is False and verdict["complete"] is None, verdict
    assert "without header and trailer: 4" in verdict["problem"], verdict
    assert "--filtered" in verdict["problem"], verdict
    assert "cannot prove it is complete" in verdict["warnings"][0], verdict
    # the operator says it was filtered: the gap is a warning
    verdict = verify(capsys, stripped, "--filtered", code=0)
    assert verdict["intact"] is True and verdict["complete"] is None, verdict
    assert "positions missing between its lines: 4" in verdict["warnings"][0], verdict
    # without a gap: intact, with the warning that it proves nothing about completeness
    whole = write(tmp_path / "w.jsonl", events)
    verdict = verify(capsys, whole, code=0)
    assert verdict["intact"] is True and verdict["complete"] is None, verdict
    assert "cannot prove it is complete" in verdict["warnings"][0], verdict
    assert verdict["complete_as_of"] is None, verdict
