"""Idempotency-Key: a repeated write returns the first answer and appends nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.auth import Principal
from shared.errors import Forbidden, IdempotencyKeyReused, ValidationFailed

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
    conn: asyncpg.Connection | asyncpg.Pool, *, caller: Principal, key: str, digest: bytes
) -> StoredResponse | None:
    """The stored answer for this key of the caller's organisation, or None.

    Raises IdempotencyKeyReused on another body, and Forbidden when the caller is another API
    key that lacks a role the writing key held: a stored answer is the write's result, so it
    goes only to a caller that could have made the write (the same key, or one holding at least
    its roles; a rotated key with the same roles still gets its retry answered).
    """
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response, key_id, roles FROM idempotency_keys"
        " WHERE organisation = $1 AND key = $2",
        caller.organisation,
        key,
    )
    if row is None:
        return None
    if bytes(row["request_hash"]) != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used by your organisation for a different request"
        )
    if row["key_id"] is not None and row["key_id"] != caller.key_id:
        lacking = sorted(set(row["roles"] or ()) - {r.value for r in caller.roles})
        if lacking:
            raise Forbidden(
                "this Idempotency-Key answered a write made with another API key; this key"
                f" lacks its role(s) {', '.join(lacking)}"
            )
    return StoredResponse(status_code=row["status_code"], body=json.loads(row["response"]))


async def remember(
    conn: asyncpg.Connection,
    *,
    caller: Principal,
    key: str,
    digest: bytes,
    response: StoredResponse,
) -> None:
    """Store the answer in the write's own transaction; a concurrent twin hits the primary key.

    The writing key's id and roles are kept with it: see `lookup`."""
    await conn.execute(
        "INSERT INTO idempotency_keys"
        " (organisation, key, request_hash, status_code, response, key_id, roles)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
        caller.organisation,
        key,
        digest,
        response.status_code,
        json.dumps(response.body),
        caller.key_id,
        sorted(r.value for r in caller.roles),
    )
