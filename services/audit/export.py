"""Exports that can be verified on their own: each event with its hash and the one before."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO

from services.audit import sources
from shared import chain
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
    """Write the selected events; reads the whole log so each line knows the hash before it."""
    previous = chain.GENESIS
    count = 0
    writer = csv.DictWriter(out, CSV_COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    async for event in events:
        if where.matches(event):
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
    lines are consecutive positions, the chain between them must join up too."""
    checked = 0
    last: tuple[int, str] | None = None
    for number, raw in enumerate(_lines(path), start=1):
        try:
            event = sources.from_feed_json(raw)
            prev = bytes.fromhex(raw["prev_hash"])
        except (KeyError, ValueError) as exc:
            return {
                "intact": False,
                "checked": checked,
                "line": number,
                "problem": f"unreadable line: {exc!r}",
            }
        position = event.position or 0
        if chain.link(prev, event, position=position).hex() != raw["hash"]:
            return {
                "intact": False,
                "checked": checked,
                "line": number,
                "position": position,
                "problem": "hash mismatch: the line was altered",
            }
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
    return {"intact": True, "checked": checked}
