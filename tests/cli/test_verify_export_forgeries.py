"""`twinaid audit verify-export` against forged, cut and hostile files: exports written by the
real command from the registry's log (real PostgreSQL), then altered the way a forger would."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.audit import export, sources
from shared import canonical as jcs
from shared import chain, signing
from shared.testing import seal_everything
from tests.cli.conftest import Stack, twinaid

pytestmark = pytest.mark.once


def verify(
    capsys: pytest.CaptureFixture[str], path: Path, *flags: str, code: int
) -> dict[str, Any]:
    ran = twinaid(capsys, "audit", "verify-export", str(path), "--json", *flags)
    assert ran.code == code, ran.out + ran.err
    verdict: dict[str, Any] = json.loads(ran.out)
    return verdict


def refused(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """verify-export of a file that is no export: one line on stderr, exit 2."""
    ran = twinaid(capsys, "audit", "verify-export", str(path), "--json")
    assert ran.code == 2, ran.out + ran.err
    assert ran.out == "" and ran.err.count("\n") == 1 and "Traceback" not in ran.err, ran.err
    assert ran.err.startswith(f"twinaid: {path} is not an export: "), ran.err
    return ran.err.strip()


@pytest.fixture
def exported(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> Path:
    """An unfiltered export of the registry's log, at least eight events long."""
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    environment.setenv("TWINAID_API_KEY", stack.auditor)

    async def more() -> None:
        headers = {"Authorization": f"Bearer {stack.admin}"}
        async with httpx.AsyncClient(base_url=stack.urls["registry"], headers=headers) as http:
            for _ in range(5):
                slug = f"town-{uuid.uuid4().hex[:8]}"
                body = {"organisation_id": slug, "name": f"Town {slug}", "kind": "municipality"}
                response = await http.post("/v1/organisations", json={**body, "country": "PL"})
                assert response.status_code == 201, response.text
        conn = await asyncpg.connect(stack.databases["registry"])
        try:
            await seal_everything(conn)
        finally:
            await conn.close()

    asyncio.run(more())
    path = tmp_path / "registry.jsonl"
    ran = twinaid(capsys, "audit", "export", "registry", str(path), "--json")
    assert ran.code == 0, ran.err
    return path


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def resealed_trailer(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trailer rewritten by a forger who knows the format: its counts and digest made to
    match the lines (everything but the service's signature of the head)."""
    header, *events, trailer = records
    digest = hashlib.sha256(jcs.dumps(header) + b"\n")
    for line in events:
        digest.update(f"{line['position']}:{line['hash']}\n".encode())
    return [
        header,
        *events,
        {
            **trailer,
            "lines": len(events),
            "first_position": events[0]["position"],
            "last_position": events[-1]["position"],
            "sha256": digest.hexdigest(),
        },
    ]


def test_a_fresh_export_is_whole_and_signed_and_the_csv_too(
    capsys: pytest.CaptureFixture[str], exported: Path, tmp_path: Path
) -> None:
    records = lines_of(exported)
    assert records[0]["twinaid_export"] == "header" and records[0]["filtered"] is False
    assert records[-1]["twinaid_export"] == "trailer" and records[-1]["signed_head"]
    verdict = verify(capsys, exported, code=0)
    assert verdict["intact"] is True and verdict["complete"] is True
    assert verdict["checked"] == len(records) - 2 == verdict["head_position"]
    assert verdict["first_position"] == 1 and verdict["missing"] is None
    assert verdict["trusted_keys"] is True and verdict["warnings"] == []
    csv_path = tmp_path / "registry.csv"
    assert twinaid(capsys, "audit", "export", "registry", str(csv_path)).code == 0
    assert verify(capsys, csv_path, code=0)["complete"] is True
    rows = csv_path.read_text().splitlines(keepends=True)
    del rows[5]  # the columns, the header, then positions 1, 2, 3: position 4 deleted
    csv_path.write_text("".join(rows))
    verdict = verify(capsys, csv_path, code=1)
    assert verdict["intact"] is False and verdict["missing"] == "4", verdict


def forged(
    records: list[dict[str, Any]], *, position: int, prev: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The outside tester's forgery: line 4's data changed, and a redaction statement signed
    with a freshly made key (naming itself) that lists the change, at `position` over `prev`."""
    events = [r for r in records if "twinaid_export" not in r]
    original = events[3]
    altered = {**original, "data": {**original["data"], "name": "FORGED: never registered"}}
    event = sources.from_feed_json(original)
    before = chain.body_digest(event, position=original["position"])
    after = chain.body_digest(sources.from_feed_json(altered), position=original["position"])
    last = events[-1]
    statement = chain.sign_redactions(
        signing.Signer.generate(),
        service="registry",
        redactions=[chain.Redaction(original["position"], original["event_id"], before, after)],
        head_position=last["position"],
        head_hash=bytes.fromhex(last["hash"]),
        reason="GDPR",
        at=datetime.now(UTC),
    )
    line: dict[str, Any] = {
        **{k: last[k] for k in ("occurred_at", "recorded_at", "metadata")},
        "position": position,
        "event_id": str(uuid.uuid4()),
        "stream_type": "audit",
        "stream_id": "audit-registry",
        "stream_version": 1,
        "event_type": chain.LOG_REDACTED,
        "schema_version": 1,
        "data": statement,
        "prev_hash": prev,
    }
    digest = chain.body_digest(sources.from_feed_json({**line, "hash": ""}), position=position)
    line["hash"] = chain.link_digest(bytes.fromhex(prev), digest).hex()
    return [altered if r is original else r for r in records], line


def test_a_self_signed_redaction_covers_nothing(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    exported: Path,
    tmp_path: Path,
) -> None:
    records = lines_of(exported)
    # as reported: the old format (no header, no trailer), the statement appended far ahead
    changed, statement = forged(records, position=10**6, prev="ab" * 32)
    legacy = [r for r in changed if "twinaid_export" not in r]
    path = write(tmp_path / "forged.jsonl", [*legacy, statement])
    verdict = verify(capsys, path, code=1)
    assert verdict["position"] == 10**6
    assert "is not signed by a key trusted for registry" in verdict["problem"], verdict
    # the same with no trusted key at all: who signed it cannot be told, so nothing it covers
    environment.setenv("TRUSTED_KEYS", "")
    environment.setenv("TWINAID_DATA_DIR", str(tmp_path / "no-keys"))
    verdict = verify(capsys, path, code=1)
    assert verdict["position"] == legacy[3]["position"] and verdict["trusted_keys"] is False
    assert "cannot be checked: no trusted key for registry" in verdict["problem"], verdict
    # nor with the keys of another service only
    keys_file = tmp_path / "pins.json"
    keys_file.write_text(json.dumps({"pledges": [signing.Signer.generate().public_key]}))
    verdict = verify(capsys, path, "--trusted-keys", str(keys_file), code=1)
    assert "cannot be checked" in verdict["problem"], verdict


def test_a_self_signed_redaction_joined_to_the_chain_covers_nothing(
    capsys: pytest.CaptureFixture[str], exported: Path, tmp_path: Path
) -> None:
    """The statement made a chained line of the export (right after the head, over its hash)
    and the trailer rewritten to match: still the forger's key."""
    records = lines_of(exported)
    head = records[-2]
    changed, statement = forged(records, position=head["position"] + 1, prev=head["hash"])
    path = write(
        tmp_path / "joined.jsonl", resealed_trailer([*changed[:-1], statement, changed[-1]])
    )
    verdict = verify(capsys, path, code=1)
    assert verdict["position"] == head["position"] + 1
    assert "is not signed by a key trusted for registry" in verdict["problem"], verdict


def test_deleted_and_cut_lines_are_not_intact(
    capsys: pytest.CaptureFixture[str], exported: Path, tmp_path: Path
) -> None:
    records = lines_of(exported)
    header, *events, trailer = records
    # `sed 5d`: position 4 gone
    verdict = verify(capsys, write(tmp_path / "d.jsonl", records[:4] + records[5:]), code=1)
    assert verdict["missing"] == "4" and verdict["missing_positions"] == 1, verdict
    assert "lines were deleted" in verdict["problem"] and verdict["complete"] is False
    # the same with the trailer's counts and digest made to match: the chain has a hole
    fixed = resealed_trailer(records[:4] + records[5:])
    verdict = verify(capsys, write(tmp_path / "f.jsonl", fixed), code=1)
    assert "positions missing from an unfiltered export: 4" in verdict["problem"], verdict
    # `tail`: the beginning cut off
    verdict = verify(capsys, write(tmp_path / "t.jsonl", records[-5:]), code=1)
    assert "header is missing" in verdict["problem"] and verdict["first_position"] > 1
    # `head`: the end cut off
    verdict = verify(capsys, write(tmp_path / "h.jsonl", records[:-3]), code=1)
    assert "trailer is missing" in verdict["problem"], verdict
    # the last lines cut and the trailer made to say so: the signed head names another
    cut = resealed_trailer(
        [
            header,
            *events[:-2],
            {**trailer, "head_position": events[-3]["position"], "head_hash": events[-3]["hash"]},
        ]
    )
    verdict = verify(capsys, write(tmp_path / "c.jsonl", cut), code=1)
    assert "signed head is not the head the trailer names" in verdict["problem"], verdict
    # ... and with the signed head dropped too: the keys are trusted, so it is wanted
    cut[-1]["signed_head"] = None
    verdict = verify(capsys, write(tmp_path / "n.jsonl", cut), code=1)
    assert "carries no signature of its head" in verdict["problem"], verdict
    # lines added after the trailer
    verdict = verify(capsys, write(tmp_path / "a.jsonl", [*records, events[-1]]), code=1)
    assert "follows the trailer" in verdict["problem"]
    # an old export (no header, no trailer) with a position missing between its lines: it
    # cannot show that nothing was deleted, so not intact unless it is said to be filtered
    old = write(tmp_path / "o.jsonl", events[:3] + events[4:])
    verdict = verify(capsys, old, code=1)
    assert verdict["intact"] is False and verdict["complete"] is None
    assert verdict["missing"] == "4" and "cannot be checked" in verdict["warnings"][0]
    verdict = verify(capsys, old, "--filtered", code=0)
    assert verdict["intact"] is True and verdict["complete"] is None
    assert "positions missing between its lines: 4" in verdict["warnings"][0]


def test_a_filtered_export_says_what_it_covers(
    capsys: pytest.CaptureFixture[str], exported: Path, tmp_path: Path
) -> None:
    events = lines_of(exported)[1:-1]
    kind = events[-1]["stream_type"]
    path = tmp_path / "some.jsonl"
    assert (
        twinaid(capsys, "audit", "export", "registry", str(path), "--stream-type", kind).code == 0
    )
    verdict = verify(capsys, path, code=0)
    wanted = [e["position"] for e in events if e["stream_type"] == kind]
    assert verdict["filtered"] is True and verdict["selection"] == {"stream_type": kind}
    assert verdict["complete"] is False and verdict["checked"] == len(wanted)
    assert verdict["last_position"] == wanted[-1] and verdict["missing_positions"] > 0
    assert any("filtered export" in w for w in verdict["warnings"]), verdict
    # a line of another stream type slipped in: not of the selection
    records = lines_of(path)
    other = next(e for e in events if e["stream_type"] != kind and e["position"] < wanted[-1])
    at = next(n for n, r in enumerate(records[1:-1], 1) if r["position"] > other["position"])
    spliced = resealed_trailer([*records[:at], other, *records[at:]])
    verdict = verify(capsys, write(tmp_path / "s.jsonl", spliced), code=1)
    assert "not of the selection" in verdict["problem"], verdict
    # a deleted line: the trailer's count says so
    del records[1]
    verdict = verify(capsys, write(tmp_path / "x.jsonl", records), code=1)
    assert "lines were deleted or added" in verdict["problem"], verdict


def test_hostile_files_are_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = {
        "position": 1,
        "event_id": str(uuid.uuid4()),
        "stream_type": "organisation",
        "stream_id": "organisation-x",
        "stream_version": 1,
        "event_type": "registry.organisation-registered",
        "schema_version": 1,
        "occurred_at": "2022-06-01T00:00:00+00:00",
        "recorded_at": "2022-06-01T00:00:00+00:00",
        "data": {},
        "metadata": {
            "actor": None,
            "organisation": None,
            "correlation_id": None,
            "causation_id": None,
            "idempotency_key": None,
        },
        "hash": "00" * 32,
        "prev_hash": "00" * 32,
    }
    cases: dict[str, tuple[bytes, str]] = {
        "binary.jsonl": (b"\x89PNG\r\n\x1a\n\xff\xfe", "line 1 is not UTF-8"),
        "array.jsonl": (b"[1, 2, 3]\n", "line 1 is not a JSON object"),
        "null-hash.jsonl": (
            (json.dumps(good) + "\n" + json.dumps({**good, "position": 2, "hash": None})).encode(),
            "line 2: its hash is not a SHA-256 in hex",
        ),
        "deep.jsonl": (
            b"[" * 100_000 + b"]" * 100_000 + b"\n",
            "line 1: its text is nested too deep",
        ),
        "deep-data.jsonl": (
            json.dumps({**good, "data": {"x": "?"}})
            .replace('"?"', "[" * 5000 + "]" * 5000)
            .encode(),
            "line 1: its text is nested too deep",
        ),
        "columns.csv": (b"a,b,c\n1,2,3\n", "line 1 is not the columns of an export"),
        "short.csv": (
            (",".join(export.CSV_COLUMNS) + "\r\n1,2,3\r\n").encode(),
            "line 2 has 3 columns",
        ),
        "text.jsonl": (b"hello\n", "line 1: its text is not JSON"),
        "bad-instant.jsonl": (
            json.dumps({**good, "recorded_at": "yesterday"}).encode(),
            "line 1 is not an event",
        ),
        "metadata.jsonl": (json.dumps({**good, "metadata": [1]}).encode(), "line 1: its metadata"),
        "empty.jsonl": (b"\n\n", "it holds no export line"),
    }
    for name, (content, problem) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert problem in refused(capsys, path), name


def test_a_line_spelled_otherwise_than_written_is_altered(
    capsys: pytest.CaptureFixture[str], exported: Path, tmp_path: Path
) -> None:
    """What is hashed is the event read from the line: a key the reader ignores, or a value
    written another way, would change what a person reads and not the hash."""
    records = lines_of(exported)
    line = records[3]
    spelled = {
        "note": {**line, "metadata": {**line["metadata"], "note": "paid twice"}},
        "renamed": {**line, "metadata": {**line["metadata"], "approved_by": None}},
        "float": {**line, "stream_version": float(line["stream_version"])},
        "boolean": {**line, "schema_version": True} if line["schema_version"] == 1 else None,
        "instant": {**line, "recorded_at": line["recorded_at"].replace("T", " ")},
        "extra": {**line, "verified_by": "the auditor"},
    }
    for name, altered in spelled.items():
        if altered is None:
            continue
        path = write(tmp_path / f"{name}.jsonl", [*records[:3], altered, *records[4:]])
        verdict = verify(capsys, path, code=1)
        assert verdict["line"] == 4 and "not how an export writes" in verdict["problem"], name
    # a key given twice, the second one what the hash covers
    text = exported.read_text().splitlines(keepends=True)
    key = json.dumps(next(iter(line["data"])))
    text[3] = text[3].replace('"data": {', f'"data": {{{key}: "someone else", ', 1)
    (tmp_path / "twice.jsonl").write_text("".join(text))
    assert "is repeated" in refused(capsys, tmp_path / "twice.jsonl")
