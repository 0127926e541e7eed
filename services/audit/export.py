"""Exports that can be verified on their own: each event with its hash and the one before."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from services.audit import sources
from shared import chain, keys
from shared.events import RecordedEvent, Selection
from shared.routes import event_json

CSV_COLUMNS = [
    "position",
    "event_id",
    "stream_type",
    "stream_id",
    "stream_version",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "data",
    "metadata",
    "hash",
    "prev_hash",
]


async def export(
    events: AsyncIterator[RecordedEvent], where: Selection, *, fmt: str, out: TextIO
) -> int:
    """Write the selected events; reads the whole log so each line knows the hash before it.
    A selected event rewritten by a redaction (shared/privacy_migration.py) no longer hashes
    to its chain hash: the `privacy.log-redacted` statement that covers it is exported too,
    selected or not, so the export still verifies on its own."""
    previous = chain.GENESIS
    count = 0
    redacted: set[int] = set()  # exported positions that do not hash as sealed
    writer = csv.DictWriter(out, CSV_COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    async for event in events:
        selected = where.matches(event)
        if selected and event.hash is not None and event.position is not None:
            try:
                if chain.link(previous, event, position=event.position) != event.hash:
                    redacted.add(event.position)
            except (ValueError, TypeError):
                redacted.add(event.position)
        elif redacted and event.event_type == chain.LOG_REDACTED:
            selected = bool(redacted & _positions(event.data))
        if selected:
            line = {**event_json(event), "prev_hash": previous.hex()}
            if writer is not None:
                writer.writerow(
                    {
                        **line,
                        "data": json.dumps(line["data"]),
                        "metadata": json.dumps(line["metadata"]),
                    }
                )
            else:
                out.write(json.dumps(line) + "\n")
            count += 1
        previous = event.hash or previous
    return count


def _positions(statement: Mapping[str, Any]) -> set[int]:
    listed = statement.get("redactions")
    if not isinstance(listed, list):
        return set()
    return {
        r["position"] for r in listed if isinstance(r, dict) and isinstance(r.get("position"), int)
    }


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="") as f:
        if path.suffix == ".csv":
            for row in csv.DictReader(f):
                yield {
                    **row,
                    "data": json.loads(row["data"]),
                    "metadata": json.loads(row["metadata"]),
                }
        else:
            for text in f:
                if text.strip():
                    yield json.loads(text)


def verify_export(path: Path) -> dict[str, Any]:
    """Recompute every line's hash from its content and the previous hash it names; where two
    lines are consecutive positions, the chain between them must join up too. A line that
    does not hash is accepted only if a `privacy.log-redacted` statement further in the export
    (itself hashing, and signed with the key it names: an export carries no pinned key) covers
    it: its original digest links to its hash, its body hashes to the redacted digest."""
    checked = 0
    last: tuple[int, str] | None = None
    held: dict[int, tuple[int, bytes, bytes, bytes, str]] = {}  # position: line, prev, ...
    for number, raw in enumerate(_lines(path), start=1):
        try:
            event = sources.from_feed_json(raw)
            prev = bytes.fromhex(raw["prev_hash"])
            sealed = bytes.fromhex(raw["hash"])
        except (KeyError, ValueError) as exc:
            return {
                "intact": False,
                "checked": checked,
                "line": number,
                "problem": f"unreadable line: {exc!r}",
            }
        position = event.position or 0
        try:
            digest: bytes | None = chain.body_digest(event, position=position)
        except (ValueError, TypeError):
            digest = None
        if digest is None or chain.link_digest(prev, digest) != sealed:
            if event.event_type in chain.SIGNED or digest is None:
                return _altered(checked, number, position)
            held[position] = (number, prev, sealed, digest, str(event.event_id))
        elif event.event_type == chain.LOG_REDACTED:
            _cover(held, event.data)
        if last is not None and position == last[0] + 1 and raw["prev_hash"] != last[1]:
            return {
                "intact": False,
                "checked": checked,
                "line": number,
                "position": position,
                "problem": "the chain does not join the previous line",
            }
        if last is not None and position <= last[0]:
            return {
                "intact": False,
                "checked": checked,
                "line": number,
                "position": position,
                "problem": "lines out of position order",
            }
        last = (position, raw["hash"])
        checked += 1
    if held:
        first = min(held)
        return _altered(held[first][0] - 1, held[first][0], first)
    return {"intact": True, "checked": checked}


def _altered(checked: int, line: int, position: int) -> dict[str, Any]:
    return {
        "intact": False,
        "checked": checked,
        "line": line,
        "position": position,
        "problem": "hash mismatch: the line was altered",
    }


def _cover(held: dict[int, tuple[int, bytes, bytes, bytes, str]], statement: Any) -> None:
    """Drop from `held` the lines a validly signed redaction statement covers."""
    if not held or not isinstance(statement, Mapping):
        return
    try:
        service = str(statement["service"])
        key = str(statement["public_key"])
        ring = keys.KeyRing.pinned({service: [key]})
        signature = base64.b64decode(str(statement["signature"]), validate=True)
        ring.verify(service, key, signature, chain.redaction_statement_body(statement))
        listed = [chain.Redaction.from_dict(r) for r in statement["redactions"]]
    except (KeyError, ValueError, TypeError, keys.UntrustedKey):
        return
    for redaction in listed:
        found = held.get(redaction.position)
        if found is None:
            continue
        _, prev, sealed, digest, event_id = found
        if (
            event_id == redaction.event_id
            and digest == redaction.after
            and chain.link_digest(prev, redaction.before) == sealed
        ):
            del held[redaction.position]
