"""Personal data, encrypted per person in the log (crypto-shredding), erasable for good.

Each data subject (a contact, a driver, a receiver...) gets a key of their own, an AES-256-GCM
key in `privacy_subjects` of the service that recorded them. What the log, the outbox, the
broker, the read models and the webhooks hold of a person is a *sealed person*:

    {"subject_id": "shipments-3f0c...", "sealed": "<base64: nonce | ciphertext>",
     "personal": ["name", "phone"], ...the fields kept in clear (a vehicle, a role)}

The chain covers the ciphertext, so nothing done to the key later changes what verifies.
`reveal` turns sealed persons back into their fields for the views allowed to show them; after
`erase` (shared/privacy_subjects.py, which finds and erases subjects) destroyed the key, every
view, history, export, replay and rebuild shows the personal fields as ERASED, and a
`privacy.subject-erased` event records that it happened (who asked, when, the legal basis: no
personal data).

The pure part of this vocabulary (SUBJECT_ID, is_sealed, ERASED) is shared/sealed.py, which
events import without the keys' driver; the names are importable from here too.

A subject is one person as one organisation recorded them: the same name recorded again by the
same organisation is the same subject (found through `fingerprint`, a keyed hash that is
destroyed with the key, so an erased subject cannot be linked to a name again). Namesakes of
one organisation share a subject.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.events import RecordedEvent
from shared.projections import Projection
from shared.sealed import ERASED as ERASED
from shared.sealed import SUBJECT_ID as SUBJECT_ID
from shared.sealed import is_sealed as is_sealed

RECORDED_GRAIN = timedelta(hours=1)  # how exactly a subject's last_recorded_at is kept


# -- sealing --------------------------------------------------------------------------------


def _normal(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


async def _pepper(conn: asyncpg.Connection) -> bytes:
    row = await conn.fetchval("SELECT pepper FROM privacy_pepper")
    if row is None:
        await conn.execute(
            "INSERT INTO privacy_pepper (pepper) VALUES ($1) ON CONFLICT DO NOTHING",
            secrets.token_bytes(32),
        )
        row = await conn.fetchval("SELECT pepper FROM privacy_pepper")
    return bytes(row)


async def fingerprint(conn: asyncpg.Connection, organisation: str, name: str) -> bytes:
    text = f"{organisation}\n{_normal(name)}".encode()
    return hmac.new(await _pepper(conn), text, hashlib.sha256).digest()


async def subject_for(
    conn: asyncpg.Connection, *, service: str, organisation: str, name: str, now: datetime
) -> tuple[str, bytes]:
    """The subject id and key of the person `name` as `organisation` records them: the
    existing subject (not erased), or a new one."""
    print_ = await fingerprint(conn, organisation, name)
    # read, not locked: many writes naming one person at once (a warehouse head confirming
    # every delivery) do not queue on the subject's row; its last_recorded_at is kept to the
    # hour (retention counts in days). A write that read the key just before an erasure
    # seals under a destroyed key: erased too.
    row = await conn.fetchrow(
        "SELECT subject_id, data_key, last_recorded_at FROM privacy_subjects"
        " WHERE fingerprint = $1",
        print_,
    )
    if row is not None and row["data_key"] is not None:
        if row["last_recorded_at"] < now - RECORDED_GRAIN:
            await conn.execute(
                "UPDATE privacy_subjects SET last_recorded_at = greatest(last_recorded_at, $2)"
                " WHERE subject_id = $1",
                row["subject_id"],
                now,
            )
    else:
        subject_id = f"{service}-{secrets.token_hex(16)}"
        row = await conn.fetchrow(
            "INSERT INTO privacy_subjects (subject_id, organisation_id, fingerprint, data_key,"
            " created_at, last_recorded_at) VALUES ($1, $2, $3, $4, $5, $5)"
            " ON CONFLICT (fingerprint) DO UPDATE"
            " SET last_recorded_at = greatest(privacy_subjects.last_recorded_at, $5)"
            " RETURNING subject_id, data_key",
            subject_id,
            organisation,
            print_,
            AESGCM.generate_key(bit_length=256),
            now,
        )
    return str(row["subject_id"]), bytes(row["data_key"])


def encrypt(key: bytes, subject_id: str, fields: Mapping[str, Any]) -> str:
    nonce = os.urandom(12)
    plain = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    sealed = AESGCM(key).encrypt(nonce, plain.encode(), subject_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def decrypt(key: bytes, subject_id: str, sealed: str) -> dict[str, Any]:
    """ValueError when the ciphertext is not this subject's (altered, or another's)."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], subject_id.encode())
    except (InvalidTag, ValueError) as exc:
        raise ValueError(f"the sealed fields of {subject_id} do not decrypt") from exc
    fields = json.loads(plain)
    if not isinstance(fields, dict):
        raise ValueError(f"the sealed fields of {subject_id} are not an object")
    return fields


async def seal_person(
    conn: asyncpg.Connection,
    person: Mapping[str, Any],
    *,
    service: str,
    organisation: str,
    personal: Collection[str],
    now: datetime,
    name_field: str = "name",
) -> dict[str, Any]:
    """`person` with its `personal` fields encrypted under its subject's key; the others kept
    in clear. Already sealed: returned as it is. The subject is found or created by the
    `name_field`'s value within `organisation` (the organisation recording the person)."""
    if is_sealed(person):
        return dict(person)
    name = person.get(name_field)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a person needs a {name_field}")
    subject_id, key = await subject_for(
        conn, service=service, organisation=organisation, name=name, now=now
    )
    hidden = {k: v for k, v in person.items() if k in personal and v is not None}
    out = {k: v for k, v in person.items() if k not in personal}
    out["subject_id"] = subject_id
    out["personal"] = sorted(hidden)
    out["sealed"] = encrypt(key, subject_id, hidden)
    return out


# -- revealing ------------------------------------------------------------------------------


def subjects_in(value: Any) -> set[str]:
    """Every subject id of a sealed person anywhere in `value` (JSON: dicts and lists)."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        # JSON's containers first, by exact type: an abc isinstance check per leaf cost a
        # rebuild a fifth of its time; other Mappings and tuples still count.
        t = type(v)
        if t is dict or (t is not list and t not in _LEAVES and isinstance(v, Mapping)):
            if "subject_id" in v and "sealed" in v:
                found.add(str(v["subject_id"]))
            for item in v.values():
                if type(item) not in _LEAVES:
                    walk(item)
        elif t is list or t is tuple:
            for item in v:
                if type(item) not in _LEAVES:
                    walk(item)

    walk(value)
    return found


_LEAVES = frozenset({str, int, float, bool, type(None)})


async def keys_of(conn: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, bytes | None]:
    """Each known subject's key; None for an erased one (unknown subjects are left out)."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT subject_id, data_key FROM privacy_subjects WHERE subject_id = ANY($1::text[])",
        wanted,
    )
    return {
        str(r["subject_id"]): bytes(r["data_key"]) if r["data_key"] is not None else None
        for r in rows
    }


def opened(person: Mapping[str, Any], key: bytes | None, *, held: bool = True) -> dict[str, Any]:
    """A sealed person as a view shows it: the clear fields, the subject id, `erased`, and the
    personal fields: decrypted; ERASED for each once the key is destroyed; `(held by
    <service>)` when another service recorded the person (`held` false: no key here)."""
    subject_id = str(person["subject_id"])
    out = {k: v for k, v in person.items() if k not in ("sealed", "personal")}
    out["erased"] = held and key is None
    fields: dict[str, Any] | None = None
    if key is not None:
        try:
            fields = decrypt(key, subject_id, str(person["sealed"]))
        except ValueError:
            fields = None
    if fields is None:
        names = person.get("personal")
        shown = ERASED if held else f"(held by {subject_id.split('-')[0]})"
        for name in names if isinstance(names, list) else ["name"]:
            out[str(name)] = shown
    else:
        out.update(fields)
    return out


def opened_with(value: Any, keys: Mapping[str, bytes | None]) -> Any:
    """`value` with every sealed person in it opened with `keys` (see `opened`; a subject
    missing from `keys` is another service's)."""
    if isinstance(value, Mapping):
        if is_sealed(value):
            sid = str(value["subject_id"])
            return opened(value, keys.get(sid), held=sid in keys)
        return {k: opened_with(v, keys) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [opened_with(v, keys) for v in value]
    return value


async def reveal(conn: asyncpg.Connection, value: Any) -> Any:
    """`value` with every sealed person opened: decrypted with this service's keys, ERASED
    where the subject was erased. A person sealed by another service (a receiver's name that
    came with a shipments event) shows ERASED here too, with `erased` false: its owner's API
    shows it to whom may see it."""
    subjects = subjects_in(value)
    if not subjects:
        return value
    return opened_with(value, await keys_of(conn, subjects))


def withheld(value: Any) -> Any:
    """`value` with every sealed person's ciphertext removed, for readers who may not see
    personal data: the subject id and clear fields stay."""
    if isinstance(value, Mapping):
        if is_sealed(value):
            return {k: v for k, v in value.items() if k not in ("sealed",)}
        return {k: withheld(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [withheld(v) for v in value]
    return value


# -- where each subject occurs --------------------------------------------------------------


async def _record_occurrences(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    subjects: list[str] = []
    event_ids: list[Any] = []
    streams: list[str] = []
    for event in events:
        for sid in sorted(subjects_in(event.data)):
            subjects.append(sid)
            event_ids.append(event.event_id)
            streams.append(event.stream_id)
    if subjects:
        await conn.execute(
            "INSERT INTO privacy_occurrences (subject_id, event_id, stream_id)"
            " SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[]) ON CONFLICT DO NOTHING",
            subjects,
            event_ids,
            streams,
        )


def projection(event_types: Iterable[str]) -> Projection:
    """Which events and records hold each subject (privacy_occurrences): for access requests
    and retention. A service lists the event types that may carry persons."""
    types = sorted(set(event_types))

    async def one(conn: asyncpg.Connection, event: RecordedEvent) -> None:
        await _record_occurrences(conn, [event])

    return Projection(
        name="privacy",
        tables=("privacy_occurrences",),
        handlers=dict.fromkeys(types, one),
        batch=_record_occurrences,
    )
