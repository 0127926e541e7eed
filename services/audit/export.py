"""Exports that can be verified on their own: each event with its hash and the one before.

An export (version 2) opens with a header record (the service and the selection it was cut
with) and closes with a trailer record (how many lines, the first and last positions, the head
of the log it was cut from and that head as the service signed it on the feed, and a SHA-256
over the header and every line's position and hash). `verify_export` recomputes every line's
hash, joins consecutive positions, names the positions missing between lines, and holds an
unfiltered export to the whole chain from position 1 to the signed head: a deleted, reordered or
cut line is not intact. A redacted line counts only when a `privacy.log-redacted` statement of
the export signed by a key trusted for the service (pinned: --trusted-keys, $TRUSTED_KEYS, the
file `make run` writes; or announced since by a key change of the export) covers it. An export
written before version 2 has neither record: its lines are checked, but whether lines were
deleted cannot be told (a warning says so), and positions missing between them make it not
intact unless the operator says it was filtered.

Offline, a head signed earlier (the data of a chain checkpoint) cannot be told from the newest:
an unfiltered export is complete as of its signed head's `signed_at` (the verdict says so), a
signed head older than a checkpoint the export holds is refused, and one signed well before the
header's `exported_at` warns; `audit verify-export --against-live` asks the service."""

from __future__ import annotations

import base64
import codecs
import csv
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from services.audit import sources
from shared import canonical as jcs
from shared import chain, keys, signing
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
VERSION = 2
RECORD = "twinaid_export"  # the key (JSON Lines) or event_type prefix (CSV) of header/trailer
HEADER, TRAILER = "header", "trailer"
# included whatever the selection: what a verifier needs to trust what the export holds
ALWAYS = (keys.KEY_CHANGED,)
MAX_LINE = 16 * 1024 * 1024  # a line longer than this is no export line
SHOWN_GAPS = 20  # missing ranges named in a verdict; the count is always given
# The feed signs the head when asked, so an export's signed head is signed as it is written, after
# its header's exported_at; one signed this much earlier is an older head (a relay's checkpoint
# interval, 60 s by default, and clocks that differ by a few minutes)
STALE_HEAD = timedelta(minutes=6)
SKEW = timedelta(minutes=1)  # between the clocks of a service's relay and its API


class Unreadable(Exception):
    """The file is not an export (or a line of it is not an export line): a refusal."""


def selection_of(where: Selection) -> dict[str, str]:
    chosen = {
        "stream_type": where.stream_type,
        "event_type": where.event_type,
        "organisation": where.organisation,
        "correlation_id": where.correlation_id,
        "recorded_from": where.recorded_from.isoformat() if where.recorded_from else None,
        "recorded_to": where.recorded_to.isoformat() if where.recorded_to else None,
    }
    return {k: v for k, v in chosen.items() if v is not None}


def _selection(chosen: Mapping[str, Any]) -> Selection:
    def instant(name: str) -> datetime | None:
        value = chosen.get(name)
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    return Selection(
        stream_type=chosen.get("stream_type"),
        event_type=chosen.get("event_type"),
        organisation=chosen.get("organisation"),
        correlation_id=chosen.get("correlation_id"),
        recorded_from=instant("recorded_from"),
        recorded_to=instant("recorded_to"),
    )


def _digest_start(header: Mapping[str, Any]) -> Any:
    return hashlib.sha256(jcs.dumps(dict(header)) + b"\n")


def _digest_line(digest: Any, position: int, sealed: str) -> None:
    digest.update(f"{position}:{sealed}\n".encode())


async def export(
    events: AsyncIterator[RecordedEvent],
    where: Selection,
    *,
    fmt: str,
    out: TextIO,
    service: str | None = None,
    signed_head: Callable[[int], Awaitable[dict[str, Any] | None]] | None = None,
    summary: dict[str, Any] | None = None,
    exported_at: datetime | None = None,
) -> int:
    """Write the selected events between a header and a trailer (see the module); reads the
    whole log so each line knows the hash before it. A selected event rewritten by a redaction
    (shared/privacy_migration.py) no longer hashes to its chain hash: the `privacy.log-redacted`
    statement that covers it is exported too, selected or not, and so is every signed key
    change (`audit.signing-key-changed`), so the export still verifies on its own.
    `signed_head(position)` gives the service's signature of the log's head (a feed page's
    `signed_head`), if it can; `summary` gets the trailer written. The header records when
    the export began (`exported_at`, now unless given): its signed head is signed after it."""
    header = {
        RECORD: HEADER,
        "version": VERSION,
        "service": service,
        "format": fmt,
        "filtered": bool(selection_of(where)),
        "selection": selection_of(where),
        "exported_at": (exported_at or datetime.now(UTC)).isoformat(),
    }
    digest = _digest_start(header)
    previous = chain.GENESIS
    count = 0
    first: int | None = None
    last: int | None = None
    head = 0
    redacted: set[int] = set()  # exported positions that do not hash as sealed
    writer = csv.DictWriter(out, CSV_COLUMNS) if fmt == "csv" else None

    def record(document: Mapping[str, Any]) -> None:
        if writer is not None:
            writer.writerow({"event_type": f"{RECORD}.{document[RECORD]}", "data": _js(document)})
        else:
            out.write(_js({**document}) + "\n")

    if writer is not None:
        writer.writeheader()
    record(header)
    async for event in events:
        selected = where.matches(event) or event.event_type in ALWAYS
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
                    {**line, "data": _js(line["data"]), "metadata": _js(line["metadata"])}
                )
            else:
                out.write(_js(line) + "\n")
            count += 1
            position = event.position or 0
            first = position if first is None else first
            last = position
            _digest_line(digest, position, line["hash"] or "")
        previous = event.hash or previous
        head = event.position or head
    trailer = {
        RECORD: TRAILER,
        "lines": count,
        "first_position": first,
        "last_position": last,
        "head_position": head,
        "head_hash": previous.hex(),
        "sha256": digest.hexdigest(),
        "signed_head": await signed_head(head) if signed_head is not None and head else None,
    }
    record(trailer)
    if summary is not None:
        summary.update(trailer)
    return count


def _js(value: Any) -> str:
    return json.dumps(value)


def _positions(statement: Mapping[str, Any]) -> set[int]:
    listed = statement.get("redactions")
    if not isinstance(listed, list):
        return set()
    return {
        r["position"] for r in listed if isinstance(r, dict) and isinstance(r.get("position"), int)
    }


# -- reading an export: every line is hostile input ----------------------------------------------


def _texts(path: Path) -> Iterator[str]:
    """The file's lines as text; Unreadable naming the line that is not UTF-8 or too long."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE:
                raise Unreadable(f"line {number} is longer than {MAX_LINE} bytes")
            try:
                text = decoder.decode(raw, final=True)
            except UnicodeDecodeError as exc:
                raise Unreadable(
                    f"line {number} is not UTF-8 text (byte {exc.start + 1}): not an export"
                ) from None
            if "\x00" in text:
                raise Unreadable(f"line {number} holds a NUL byte: not an export")
            yield text


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key[:100]!r} is repeated")
        found[key] = value
    return found


def _json(text: str, number: int, what: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except RecursionError:
        raise Unreadable(f"line {number}: its {what} is nested too deep") from None
    except ValueError as exc:
        raise Unreadable(f"line {number}: its {what} is not JSON ({exc})") from None


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str] | None]]:
    """(line number, record, CSV cells) for each record: an event line as the feed gives it
    (strings for CSV's columns), or a header or trailer (a dict with RECORD); the cells of
    its CSV row as written (None for JSON Lines)."""
    if path.suffix == ".csv":
        rows = csv.reader(_texts(path), strict=True)
        try:
            columns = False
            for row in rows:
                number = rows.line_num
                if not columns:
                    columns = True
                    if row != CSV_COLUMNS:
                        raise Unreadable(
                            "line 1 is not the columns of an export: " + ",".join(CSV_COLUMNS)
                        )
                    continue
                if not row:
                    continue
                if len(row) != len(CSV_COLUMNS):
                    raise Unreadable(
                        f"line {number} has {len(row)} columns, not the {len(CSV_COLUMNS)}"
                        " of an export"
                    )
                fields = dict(zip(CSV_COLUMNS, row, strict=True))
                if fields["position"] == "" and fields["event_type"].startswith(RECORD + "."):
                    record = _json(fields["data"], number, "data column")
                    if not isinstance(record, dict):
                        raise Unreadable(f"line {number}: its data column is not a JSON object")
                    kind = str(record.get(RECORD))
                    written = {"event_type": f"{RECORD}.{kind}", "data": _js(record)}
                    if any(fields[c] != written.get(c, "") for c in CSV_COLUMNS):
                        raise Unreadable(f"line {number}: an export {kind} not as written")
                    yield number, {**record, RECORD: kind}, None
                    continue
                for column in ("data", "metadata"):
                    fields[column] = _json(fields[column], number, f"{column} column")
                if not fields["position"].isdigit() or len(fields["position"]) > 19:
                    raise Unreadable(f"line {number}: its position is not a positive integer")
                yield number, {**fields, "position": int(fields["position"])}, row
        except csv.Error as exc:
            raise Unreadable(f"line {rows.line_num}: not CSV ({exc})") from None
    else:
        for number, text in enumerate(_texts(path), start=1):
            if text.strip():
                record = _json(text, number, "text")
                if not isinstance(record, dict):
                    raise Unreadable(f"line {number} is not a JSON object: not an export line")
                yield number, record, None


def _hex32(raw: Mapping[str, Any], name: str, number: int) -> bytes:
    value = raw.get(name)
    if not isinstance(value, str) or len(value) != 64:
        raise Unreadable(f"line {number}: its {name} is not a SHA-256 in hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise Unreadable(f"line {number}: its {name} is not a SHA-256 in hex") from None


def _event(
    raw: Mapping[str, Any], number: int, cells: list[str] | None
) -> tuple[RecordedEvent, bytes, bytes]:
    """The event of an export line, its previous hash and its hash; Unreadable naming what
    is wrong with it."""
    missing = [c for c in CSV_COLUMNS if c not in raw]
    if missing:
        raise Unreadable(f"line {number} lacks {', '.join(missing)}: not an export line")
    position = raw["position"]
    if not isinstance(position, int) or isinstance(position, bool) or not 1 <= position < 2**63:
        raise Unreadable(f"line {number}: its position is not a positive integer")
    for name in ("data", "metadata"):
        if not isinstance(raw[name], dict):
            raise Unreadable(f"line {number}: its {name} is not a JSON object")
    for name in ("event_id", "stream_type", "stream_id", "event_type"):
        if not isinstance(raw[name], str):
            raise Unreadable(f"line {number}: its {name} is not a text")
    prev = _hex32(raw, "prev_hash", number)
    sealed = _hex32(raw, "hash", number)
    try:
        event = sources.from_feed_json(dict(raw))
        if event.occurred_at.tzinfo is None or event.recorded_at.tzinfo is None:
            raise ValueError("an instant without a time zone")
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, RecursionError) as e:
        raise Unreadable(f"line {number} is not an event: {type(e).__name__}: {e}") from None
    return event, prev, sealed


def _as_written(event: RecordedEvent, raw: Mapping[str, Any], cells: list[str] | None) -> bool:
    """Whether the line is exactly what `export` writes for `event` (what is hashed is the
    event read from the line: a field it ignores, an extra key or a value spelled otherwise,
    such as 1.0 for 1 or another separator in an instant, would pass unseen)."""
    line = {**event_json(event), "prev_hash": raw["prev_hash"]}
    if cells is None:
        return json.dumps(raw, sort_keys=True) == json.dumps(line, sort_keys=True)
    written = [
        _js(line[c]) if c in ("data", "metadata") else "" if line[c] is None else str(line[c])
        for c in CSV_COLUMNS
    ]
    return written == cells


# -- verifying ----------------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, line: int | None, position: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.position = position
        self.problem = problem


@dataclass
class _Held:
    line: int
    prev: bytes
    sealed: bytes
    digest: bytes
    event_id: str
    signed_by_own_key: bool = False  # covered by a statement checked only with its own key


@dataclass
class _Walk:
    ring: keys.KeyRing | None
    service: str | None = None
    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    trailer_line: int = 0
    digest: Any = None
    checked: int = 0
    first: int | None = None
    last: tuple[int, bytes] | None = None
    hashes: dict[int, bytes] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    held: dict[int, _Held] = field(default_factory=dict)
    checkpoints: int = 0
    redactions: int = 0
    warnings: list[str] = field(default_factory=list)
    # (line, position signed, signed_at) of each checkpoint line that hashes
    signed: list[tuple[int, int, datetime]] = field(default_factory=list)
    head_signed_at: datetime | None = None  # of the trailer's signed head, once checked
    said_filtered: bool = False  # the operator says a headerless export was filtered

    def trusted(self, service: str) -> bool:
        return self.ring is not None and bool(self.ring.keys(service))


def verify_export(
    path: Path, *, trusted: keys.KeyRing | None = None, filtered: bool = False
) -> dict[str, Any]:
    """The verdict on an export (see the module): `intact`, how many lines were `checked`,
    what it covers and what is missing, and on failure the `line`, `position` and `problem`.
    `trusted` pins the keys that may sign for each service (checked: the signed head, the
    checkpoints, the key changes and the redaction statements of the export); without it a
    redacted line cannot be accepted. `filtered`: the operator says an export without header
    and trailer was cut with a selection (else positions missing between its lines make it not
    intact). Unreadable when the file is not an export."""
    walk = _Walk(ring=trusted, said_filtered=filtered)
    read = 0
    try:
        for number, raw, cells in _records(path):
            read += 1
            if walk.trailer is not None:
                raise _Failed(number, None, "a line follows the trailer: lines were appended")
            if RECORD in raw:
                _meta(walk, number, raw)
            else:
                _line(walk, number, raw, cells)
        if not read:
            raise Unreadable("it holds no export line (an empty file)")
        _finish(walk)
    except _Failed as failed:
        verdict = _verdict(walk, intact=False)
        verdict.update(line=failed.line, position=failed.position, problem=failed.problem)
        return verdict
    return _verdict(walk, intact=True)


def _meta(walk: _Walk, number: int, raw: dict[str, Any]) -> None:
    kind = raw[RECORD]
    if kind == HEADER:
        if number > 2 or walk.header is not None or walk.checked:
            raise _Failed(number, None, "the export's header is not its first line")
        if raw.get("version") != VERSION or not isinstance(raw.get("selection"), dict):
            raise Unreadable(f"line {number}: an export header of an unknown version")
        service = raw.get("service")
        if service is not None and not isinstance(service, str):
            raise Unreadable(f"line {number}: the header's service is not a text")
        if raw.get("filtered") is not bool(raw["selection"]):
            raise Unreadable(f"line {number}: the header's filtered and selection disagree")
        _check_selection(raw["selection"], number)
        if "exported_at" in raw and instant(raw["exported_at"]) is None:
            raise Unreadable(f"line {number}: the header's exported_at is not an instant")
        walk.header = raw
        walk.service = service
        try:
            walk.digest = _digest_start(raw)
        except (jcs.CanonicalizationError, RecursionError, ValueError, TypeError) as exc:
            raise Unreadable(f"line {number}: the header has no canonical form: {exc}") from None
    elif kind == TRAILER:
        walk.trailer = raw
        walk.trailer_line = number
    else:
        raise Unreadable(f"line {number}: a {RECORD} record that is neither header nor trailer")


def instant(value: object) -> datetime | None:
    """An RFC 3339 instant with its offset, else None."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _check_selection(chosen: Mapping[str, Any], number: int) -> None:
    known = ("stream_type", "event_type", "organisation", "correlation_id")
    for name, value in chosen.items():
        if name not in (*known, "recorded_from", "recorded_to") or not isinstance(value, str):
            raise Unreadable(f"line {number}: the header's selection {name!r} is not one")
        if name.startswith("recorded_"):
            try:
                at = datetime.fromisoformat(value)
            except ValueError:
                at = None
            if at is None or at.tzinfo is None:
                raise Unreadable(f"line {number}: the header's {name} is not an instant")


def _line(walk: _Walk, number: int, raw: dict[str, Any], cells: list[str] | None) -> None:
    event, prev, sealed = _event(raw, number, cells)
    if not _as_written(event, raw, cells):
        raise _Failed(
            number,
            event.position,
            "the line was altered: it is not how an export writes the event it reads as"
            " (a field added, renamed, retyped or respelled)",
        )
    position = event.position or 0
    if walk.last is not None and position <= walk.last[0]:
        raise _Failed(number, position, "lines out of position order")
    if walk.last is not None and position == walk.last[0] + 1 and prev != walk.last[1]:
        raise _Failed(number, position, "the chain does not join the previous line")
    if position == 1 and prev != chain.GENESIS:
        raise _Failed(number, position, "the first position does not start the chain")
    if (
        walk.header is not None
        and walk.header["selection"]
        and event.event_type
        not in (
            *ALWAYS,
            chain.LOG_REDACTED,
        )
    ):
        if not _selection(walk.header["selection"]).matches(event):
            raise _Failed(number, position, "the line is not of the selection the header names")
    expected = walk.last[0] + 1 if walk.last is not None else 1
    if position > expected:
        walk.gaps.append((expected, position - 1))
    try:
        digest: bytes | None = chain.body_digest(event, position=position)
    except (ValueError, TypeError, ArithmeticError, RecursionError, jcs.CanonicalizationError):
        digest = None
    if digest is None or chain.link_digest(prev, digest) != sealed:
        if event.event_type in chain.SIGNED or digest is None:
            raise _Failed(number, position, "hash mismatch: the line was altered")
        walk.held[position] = _Held(number, prev, sealed, digest, str(event.event_id))
    elif event.event_type == chain.LOG_REDACTED:
        _statement(walk, number, position, event.data)
    elif event.event_type == signing.CHECKPOINT:
        _checkpoint(walk, number, position, event.data)
    elif event.event_type == keys.KEY_CHANGED:
        _key_change(walk, number, position, event.data)
    if walk.digest is not None:
        _digest_line(walk.digest, position, sealed.hex())
    walk.hashes[position] = sealed
    walk.first = position if walk.first is None else walk.first
    walk.last = (position, sealed)
    walk.checked += 1


def _service_of(walk: _Walk, number: int, position: int, document: Mapping[str, Any]) -> str:
    named = document.get("service")
    if not isinstance(named, str):
        raise _Failed(number, position, "a signed event here names no service")
    if walk.service is not None and named != walk.service:
        raise _Failed(number, position, f"a signed event of {named} in an export of {walk.service}")
    walk.service = named
    return named


def _checkpoint(walk: _Walk, number: int, position: int, checkpoint: Mapping[str, Any]) -> None:
    service = _service_of(walk, number, position, checkpoint)
    at, signed_at = checkpoint.get("position"), instant(checkpoint.get("signed_at"))
    if isinstance(at, int) and not isinstance(at, bool) and signed_at is not None:
        walk.signed.append((number, at, signed_at))
    if not walk.trusted(service):
        return
    assert walk.ring is not None
    problem = _signature(walk.ring, service, checkpoint, signing.SIGNED_FIELDS)
    if problem is not None:
        raise _Failed(number, position, f"the checkpoint here {problem}")
    if isinstance(at, int) and at in walk.hashes:
        if walk.hashes[at].hex() != checkpoint.get("hash"):
            raise _Failed(number, at, "the chain does not match the checkpoint signed here")
        walk.checkpoints += 1


def _key_change(walk: _Walk, number: int, position: int, change: Mapping[str, Any]) -> None:
    service = _service_of(walk, number, position, change)
    if walk.trusted(service):
        assert walk.ring is not None
        try:
            walk.ring.announce(service, change)
        except keys.UntrustedKey as exc:
            raise _Failed(
                number, position, f"a key change not signed by a key trusted for {service}: {exc}"
            ) from None


def _signature(
    ring: keys.KeyRing, service: str, document: Mapping[str, Any], fields: tuple[str, ...]
) -> str | None:
    try:
        body = jcs.dumps({k: document[k] for k in fields})
        signature = base64.b64decode(str(document["signature"]), validate=True)
        ring.verify(service, str(document["public_key"]), signature, body)
    except (KeyError, ValueError, TypeError, RecursionError, jcs.CanonicalizationError):
        return "is malformed"
    except keys.UntrustedKey as exc:
        return f"is not signed by a key trusted for {service} ({exc.reason})"
    return None


def _statement(walk: _Walk, number: int, position: int, statement: Mapping[str, Any]) -> None:
    """A redaction statement that hashes: it covers the held lines it lists when signed by a
    key trusted for the service and naming a head before its own position."""
    service = _service_of(walk, number, position, statement)
    trusted = walk.trusted(service)
    try:
        head = statement["head_position"]
        if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head < position:
            raise ValueError("its head is not a position before it")
        listed = [chain.Redaction.from_dict(r) for r in statement["redactions"]]
        if any(r.position > head for r in listed):
            raise ValueError("it names a position after its head")
        if head in walk.hashes and walk.hashes[head].hex() != statement["head_hash"]:
            raise ValueError("the chain does not match the head it names")
    except (KeyError, ValueError, TypeError) as exc:
        raise _Failed(
            number, position, f"the redaction statement here is malformed: {exc}"
        ) from None
    if trusted:
        assert walk.ring is not None
        problem = _signature(walk.ring, service, statement, chain.REDACTION_SIGNED_FIELDS)
        if problem is not None:
            raise _Failed(number, position, f"the redaction statement here {problem}")
    else:  # who signed it cannot be told: what it covers stays unverified
        own = _signature(
            keys.KeyRing.pinned({service: [str(statement.get("public_key"))]})
            if _is_key(statement.get("public_key"))
            else keys.KeyRing(),
            service,
            statement,
            chain.REDACTION_SIGNED_FIELDS,
        )
        if own is not None:
            raise _Failed(number, position, "the redaction statement here is not validly signed")
    for redaction in listed:
        found = walk.held.get(redaction.position)
        if (
            found is not None
            and not found.signed_by_own_key
            and found.event_id == redaction.event_id
            and found.digest == redaction.after
            and chain.link_digest(found.prev, redaction.before) == found.sealed
        ):
            if trusted:
                del walk.held[redaction.position]
                walk.redactions += 1
            else:
                found.signed_by_own_key = True


def _is_key(raw: object) -> bool:
    try:
        keys.public_key(str(raw))
    except ValueError:
        return False
    return True


def _finish(walk: _Walk) -> None:
    if walk.held:
        first = min(walk.held)
        held = walk.held[first]
        if held.signed_by_own_key:
            service = walk.service or "the service"
            raise _Failed(
                held.line,
                first,
                "the line was redacted, but who signed the redaction statement that covers it"
                f" cannot be checked: no trusted key for {service} was given (--trusted-keys,"
                " $TRUSTED_KEYS); a statement anyone can sign proves nothing",
            )
        raise _Failed(held.line, first, "hash mismatch: the line was altered")
    if walk.header is None and walk.trailer is None:
        walk.warnings.append(
            "this export has no header and trailer (written before version 2, or both cut off):"
            " it cannot prove it is complete, whether lines were deleted from it cannot be"
            " checked"
            + (
                f"; positions missing between its lines: {_missing(walk)}"
                if walk.gaps
                else f"; its first line is position {walk.first}"
                if walk.first not in (1, None)
                else ""
            )
        )
        if walk.gaps and not walk.said_filtered:
            raise _Failed(
                None,
                walk.gaps[0][0],
                f"positions missing between the lines of an export without header and trailer:"
                f" {_missing(walk)} (lines were deleted, or it was filtered: if it was, say so"
                " with --filtered)",
            )
        return
    if walk.header is None:
        raise _Failed(1, None, "the export's header is missing: its beginning was cut off")
    trailer = walk.trailer
    if trailer is None:
        raise _Failed(None, None, "the export's trailer is missing: its end was cut off")
    number = walk.trailer_line
    filtered = bool(walk.header["selection"])
    last = walk.last[0] if walk.last is not None else None
    if (
        trailer.get("lines") != walk.checked
        or trailer.get("first_position") != walk.first
        or trailer.get("last_position") != last
    ):
        raise _Failed(
            number,
            None,
            f"the trailer says {trailer.get('lines')} lines at positions"
            f" {trailer.get('first_position')}-{trailer.get('last_position')}; the export holds"
            f" {walk.checked}"
            + (f" at {walk.first}-{last}" if walk.checked else "")
            + ": lines were deleted or added",
        )
    if trailer.get("sha256") != walk.digest.hexdigest():
        raise _Failed(number, None, "the trailer's digest does not match the lines: edited")
    head = trailer.get("head_position")
    head_hash = trailer.get("head_hash")
    if not isinstance(head, int) or isinstance(head, bool) or head < (last or 0):
        raise _Failed(number, None, "the trailer's head is not a position at or after the lines")
    if head in walk.hashes and walk.hashes[head].hex() != head_hash:
        raise _Failed(number, head, "the trailer's head hash is not the line's at that position")
    if not filtered:
        if walk.gaps or (walk.first not in (1, None)):
            gap = walk.gaps[0] if walk.gaps else (1, (walk.first or 1) - 1)
            raise _Failed(
                None,
                gap[0],
                f"positions missing from an unfiltered export: {_missing(walk)}"
                " (lines were deleted)",
            )
        if last != (head or None):
            raise _Failed(number, head, f"the export ends at {last}, before its head {head}: cut")
    _signed_head(walk, number, head, head_hash)


def _signed_head(walk: _Walk, number: int, head: int, head_hash: Any) -> None:
    signed = walk.trailer.get("signed_head") if walk.trailer else None
    service = walk.service
    if not head:
        return
    if not isinstance(signed, dict) and service is not None and walk.trusted(service):
        raise _Failed(
            number,
            head,
            f"the export carries no signature of its head, though keys are trusted for {service}:"
            " its end may have been cut",
        )
    if not isinstance(signed, dict):
        walk.warnings.append(
            "the service's signature of the head is not in the export: that nothing after"
            f" position {head} was cut cannot be checked"
        )
        return
    if signed.get("position") != head or signed.get("hash") != head_hash:
        raise _Failed(number, head, "the signed head is not the head the trailer names")
    signed_at = instant(signed.get("signed_at"))
    if signed_at is None:
        raise _Failed(number, head, "the signed head has no signed_at instant: malformed")
    for line, at, when in walk.signed:
        # a checkpoint of the export signed at or after the trailer's head, or later than it:
        # the trailer's head is not the newest the export itself shows
        if at >= head or when > signed_at + SKEW:
            raise _Failed(
                number,
                head,
                f"the signed head (position {head}, signed at {signed_at.isoformat()}) is older"
                f" than the checkpoint on line {line} (position {at}, signed at"
                f" {when.isoformat()}): it is not the log's newest head, the end was cut",
            )
    if service is None or not walk.trusted(service):
        walk.warnings.append(
            f"no trusted key for {service or 'the service'} was given (--trusted-keys,"
            " $TRUSTED_KEYS): the head's signature, the checkpoints and key changes were not"
            " checked, so the export shows itself consistent, not the service's own"
        )
        return
    assert walk.ring is not None
    problem = _signature(walk.ring, service, signed, signing.SIGNED_FIELDS)
    if problem is not None or signed.get("service") != service:
        raise _Failed(number, head, f"the signed head {problem or 'is of another service'}")
    walk.head_signed_at = signed_at
    made = instant(walk.header.get("exported_at")) if walk.header is not None else None
    if made is not None and signed_at < made - STALE_HEAD:
        walk.warnings.append(
            f"the signed head (position {head}) was signed at {signed_at.isoformat()}, well"
            f" before the export says it was made ({made.isoformat()}): an export signs the"
            " head as it is written, so this is an older head, the data of a checkpoint; the"
            " events after it may have been cut with its trailer rewritten (the header is not"
            " signed either: compare with the service's live head)"
        )


def _missing(walk: _Walk) -> str:
    ranges = list(walk.gaps)
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:SHOWN_GAPS]]
    more = f" and {len(ranges) - SHOWN_GAPS} more ranges" if len(ranges) > SHOWN_GAPS else ""
    return ", ".join(shown) + more


def _verdict(walk: _Walk, *, intact: bool) -> dict[str, Any]:
    header, trailer = walk.header, walk.trailer
    filtered = bool(header["selection"]) if header is not None else None
    missing = sum(b - a + 1 for a, b in walk.gaps)
    verdict: dict[str, Any] = {
        "intact": intact,
        "checked": walk.checked,
        "service": walk.service,
        "filtered": filtered,
        "selection": header["selection"] if header is not None else None,
        "first_position": walk.first,
        "last_position": walk.last[0] if walk.last is not None else None,
        "head_position": trailer.get("head_position") if trailer is not None else None,
        "missing_positions": missing,
        "missing": _missing(walk) if walk.gaps else None,
        # every position of the log up to its head is in the export (None: cannot be told)
        "complete": None if header is None or trailer is None else intact and not filtered,
        "head_hash": trailer.get("head_hash") if trailer is not None else None,
        "exported_at": header.get("exported_at") if header is not None else None,
        # when the service signed the head the export claims (trusted keys only): complete
        # means complete up to there; events appended after it cannot be seen offline
        "head_signed_at": walk.head_signed_at.isoformat() if walk.head_signed_at else None,
        "complete_as_of": None,
        "trusted_keys": walk.service is not None and walk.trusted(walk.service),
        "checkpoints_checked": walk.checkpoints,
        "redactions_checked": walk.redactions,
        "warnings": list(walk.warnings),
        # the digest `audit export` printed, to compare: it covers the header and every line
        "sha256": trailer.get("sha256") if trailer is not None else None,
    }
    if intact and not filtered and walk.head_signed_at is not None and trailer is not None:
        verdict["complete_as_of"] = (
            f"complete as of {walk.head_signed_at.isoformat()}, position"
            f" {trailer.get('head_position')}: the head the service signed then; whether events"
            " after it were cut cannot be told offline, compare with the service's live head"
        )
    if filtered and walk.gaps:
        verdict["warnings"].append(
            f"a filtered export ({_js(header['selection'] if header else {})}): it holds"
            f" {walk.checked} lines, {missing} positions between them are not in it; that they"
            " are only events outside the selection cannot be checked from the file alone"
        )
    return verdict
