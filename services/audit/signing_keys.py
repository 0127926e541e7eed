"""`twinaid keys rotate-signing SERVICE`: a service changes the key that signs its checkpoints.

Whoever trusts the old key comes to trust the new one through the service's own log: the change
is appended as an `audit.signing-key-changed` event signed by the old key, sealed and relayed
like any event, and every verifier (GET /v1/audit/verify, `twinaid audit`, the consumers)
extends its pins (TRUSTED_KEYS, which stay as they are) when it meets it. The worker reads its
key file at start-up: it signs with the old key, still trusted, until it is restarted.
"""

from __future__ import annotations

import binascii
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from shared import keys, signing
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent

ACTOR = "twinaid keys rotate-signing"


class RotationRefused(Exception):
    """Nothing was changed, for the reason given."""


@dataclass(frozen=True, slots=True)
class Rotation:
    service: str
    previous_public_key: str
    public_key: str
    key_file: Path
    previous_key_file: Path


def stream_of(service: str) -> str:
    return f"signing-key-{service}"


async def announce(
    conn: asyncpg.Connection,
    *,
    service: str,
    previous: signing.Signer,
    new: signing.Signer,
    now: datetime,
) -> dict[str, object]:
    """Append the change to `service`'s log (in the caller's transaction); returns its data."""
    store = PostgresEventStore(conn)
    stream = stream_of(service)
    data = previous.announce_change(new, service=service, at=now)
    await store.append(
        stream_type=signing.STREAM_TYPE,
        stream_id=stream,
        expected_version=await store.current_version(stream),
        events=[NewEvent(keys.KEY_CHANGED, data)],
        metadata=Metadata(actor=ACTOR),
        now=now,
    )
    return data


async def rotate(
    conn: asyncpg.Connection, *, service: str, key_file: Path, now: datetime
) -> Rotation:
    """Replace the key in `key_file` by a new one, announced in `service`'s log (`conn`).

    The new key is staged beside the file first and takes its place only once the announcement
    is committed; the old key is kept in `<key_file>.previous`. Raises RotationRefused if
    `key_file` holds no key."""
    previous = _load(key_file)
    new = signing.Signer.generate()
    staged = key_file.with_name(key_file.name + ".next")
    new.save(staged)
    try:
        async with conn.transaction():
            await announce(conn, service=service, previous=previous, new=new, now=now)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    kept = _install(staged, key_file, previous)
    return Rotation(service, previous.public_key, new.public_key, key_file, kept)


def _load(key_file: Path) -> signing.Signer:
    if not key_file.is_file():
        raise RotationRefused(f"no signing key at {key_file} (the worker's SIGNING_KEY_FILE)")
    try:
        return signing.Signer.from_file(key_file)
    except (ValueError, binascii.Error) as exc:
        raise RotationRefused(f"{key_file} does not hold an Ed25519 private key: {exc}") from None


def _install(staged: Path, key_file: Path, previous: signing.Signer) -> Path:
    kept = key_file.with_name(key_file.name + ".previous")
    previous.save(kept)
    os.replace(staged, key_file)
    return kept
