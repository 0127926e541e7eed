"""Idempotency-Key: a repeated write returns the first answer and appends nothing.

shared/web.py `execute_write` runs the event-sourced writes with it; `written_once` runs a
write of rows (a webhook subscription) the same way; `refused` answers the writes that may not
keep their answer (one holding an API key's secret) with a 422 instead of ignoring the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse

from shared import canonical, json_body
from shared.auth import Principal
from shared.db import Database
from shared.errors import Forbidden, IdempotencyKeyReused, TwinaidError, ValidationFailed

MAX_KEY_LENGTH = 200
HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


class RequestHash(bytes):
    """A request's digest, as stored with its key: of its method, path and body, the body in
    its RFC 8785 form when it is JSON (the same JSON re-sent with other spacing or key order is
    the same request), else as sent. `raw` is the digest of the body as sent, which keys stored
    before the canonical form hold: `lookup` takes either, so their retries still replay."""

    raw: bytes

    def __new__(cls, digest: bytes, *, raw: bytes) -> RequestHash:
        made = super().__new__(cls, digest)
        made.raw = raw
        return made


def request_hash(method: str, path: str, body: bytes) -> RequestHash:
    """The digest `lookup` and `remember` take (RequestHash). A JSON body's duplicate keys count
    as parsed (the last one), as the route reads them."""
    head = method.encode() + b" " + path.encode() + b"\n"
    raw = hashlib.sha256(head + body).digest()
    form = _canonical(body)
    return RequestHash(raw if form is None else hashlib.sha256(head + form).digest(), raw=raw)


def _canonical(body: bytes) -> bytes | None:
    """The RFC 8785 bytes of a JSON body; None for a body that is not JSON (or has no RFC 8785
    form: NaN, a lone surrogate, nesting too deep), hashed as sent."""
    if not body:
        return None
    try:
        parsed = json_body.loads(body)
        if not _floats_exact(parsed):
            # a number its float does not hold exactly (a quantity's 18th digit): two such
            # bodies can share one RFC 8785 form while the routes read them apart
            return None
        return canonical.dumps(parsed)
    except (ValueError, RecursionError, canonical.CanonicalizationError):
        return None


def _floats_exact(value: Any) -> bool:
    """Whether every fractional number in `value` is its float exactly, as written."""
    if isinstance(value, json_body.JsonNumber):
        try:
            return json_body.written(value) == Decimal(repr(float(value)))
        except ArithmeticError:
            return False
    if isinstance(value, dict):
        return all(_floats_exact(v) for v in value.values())
    if isinstance(value, list):
        return all(_floats_exact(v) for v in value)
    return True


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
    if bytes(row["request_hash"]) not in _forms(digest):
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


def _forms(digest: bytes) -> tuple[bytes, ...]:
    """What a stored hash of this request may be: its digest, and its body's digest as sent."""
    return (digest, digest.raw) if isinstance(digest, RequestHash) else (digest,)


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
        bytes(digest),
        response.status_code,
        json.dumps(response.body),
        caller.key_id,
        sorted(r.value for r in caller.roles),
    )


Write = Callable[[asyncpg.Connection], Awaitable[StoredResponse]]


async def keyed(request: Request) -> tuple[str, RequestHash] | None:
    """The request's Idempotency-Key (checked) and digest; None when it sends none."""
    raw_key = request.headers.get(HEADER)
    if raw_key is None:
        return None
    body = await request.body()
    return check_key(raw_key), request_hash(request.method, request.scope["path"], body)


async def written_once(
    db: Database, request: Request, caller: Principal, write: Write
) -> JSONResponse:
    """`write` in a transaction of its own, its answer stored there under the request's
    Idempotency-Key: a retry (or a concurrent twin) with the same key and body gets that answer
    again (`Idempotent-Replayed: true`) and writes nothing; another body is a 422."""
    key = await keyed(request)
    if key is None:
        async with db.transaction() as conn:
            return _answer(await write(conn))
    if (stored := await lookup(db.pool, caller=caller, key=key[0], digest=key[1])) is not None:
        return _answer(stored, replayed=True)
    try:
        async with db.transaction() as conn:
            answer = await write(conn)
            await remember(conn, caller=caller, key=key[0], digest=key[1], response=answer)
    except (asyncpg.UniqueViolationError, TwinaidError):
        # a concurrent twin may have stored its answer first (and made ours fail): answer as it
        stored = await lookup(db.pool, caller=caller, key=key[0], digest=key[1])
        if stored is None:
            raise
        return _answer(stored, replayed=True)
    return _answer(answer)


def _answer(stored: StoredResponse, *, replayed: bool = False) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


def refused(request: Request, why: str) -> None:
    """Raises ValidationFailed (422 naming the header) when the request sends an
    Idempotency-Key to a write that cannot keep its answer (`why`), instead of ignoring it."""
    if request.headers.get(HEADER) is not None:
        name = f"header.{HEADER.lower()}"
        raise ValidationFailed(
            f"{HEADER} is not honoured here: {why}",
            extra={"invalid_params": [{"name": name, "reason": why}]},
        )
