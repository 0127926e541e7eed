"""Idempotency-Key: a repeated write returns the first answer and appends nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.errors import IdempotencyKeyReused, ValidationFailed

MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


def request_hash(method: str, path: str, body: bytes) -> bytes:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).digest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters"
        )
    return key


async def lookup(
    conn: asyncpg.Connection | asyncpg.Pool, *, organisation: str, key: str, digest: bytes
) -> StoredResponse | None:
    """The stored answer for this key, or None. Raises IdempotencyKeyReused on another body."""
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys"
        " WHERE organisation = $1 AND key = $2",
        organisation,
        key,
    )
    if row is None:
        return None
    if bytes(row["request_hash"]) != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used by your organisation for a different request"
        )
    return StoredResponse(status_code=row["status_code"], body=json.loads(row["response"]))


async def remember(
    conn: asyncpg.Connection,
    *,
    organisation: str,
    key: str,
    digest: bytes,
    response: StoredResponse,
) -> None:
    """Store the answer in the write's own transaction; a concurrent twin hits the primary key."""
    await conn.execute(
        "INSERT INTO idempotency_keys (organisation, key, request_hash, status_code, response)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)",
        organisation,
        key,
        digest,
        response.status_code,
        json.dumps(response.body),
    )
