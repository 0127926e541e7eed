"""Migrating the events written before personal data was sealed (issue 20, point 7).

Events written before shared/privacy.py hold the persons they name in clear (schema version 1).
They are rewritten IN PLACE into their sealed form (the service's `seal_v1`: the same payload
with each person a sealed person, schema version 2), without re-chaining:

- the chain is not recomputed: an event's chain hash covers the SHA-256 of its canonical body,
  so a rewritten position is still verified with the digest of its ORIGINAL body (`before`),
  which the migration records, without the original body; every checkpoint signed before the
  migration stays valid (no chain hash changes);
- each rewrite is recorded as a redaction (position, event id, `before` and `after` =
  the digest of the body now) in ONE `privacy.log-redacted` event appended to the log (one per
  STATEMENT_SIZE redactions: a consumer reads no event beyond 256 KiB), signed with the
  service's signing key (as chain checkpoints are) and naming the chain head before the
  rewrite and the reason; each redaction is signed on its own too (what travels with the
  event when it is published again, see `carried`); the same redactions in the
  `log_redactions` table, for the verifier's fast lookup (each counts only if that signed
  statement names it);
- verification (shared/chain_verifier.py Verifier, GET /v1/audit/verify, `twinaid audit`) links a
  redacted position with `before`, requires its body now to hash to `after`, and fails a
  redaction no statement signed by a pinned or announced key of the service covers, and a body
  that matches neither.

The procedure: run `migrate` (one transaction: the sealer waits, writers wait on the events
table), then rebuild the read models, which still hold the clear copies folded from the old
events (`projections`, or `twinaid rebuild <service>`). Running it again rewrites nothing.

Known cost: `before` is the digest of the original body, clear names included. Whoever guesses
an erased person's exact original event (every field, to the microsecond) can confirm the
guess against it. It reveals nothing to anyone who cannot already write that event out.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from shared import chain, keys, sealer, signing
from shared import projections as proj
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.rows import COLUMNS, from_row

LOG_REDACTED = chain.LOG_REDACTED
STREAM_TYPE = signing.STREAM_TYPE
SEALED_SCHEMA_VERSION = 2
DEFAULT_REASON = (
    "personal data written in clear before issue 20 sealed per person (crypto-shredding);"
    " the original bodies' digests keep the chain verifiable"
)
PAGE = 1000
# redactions a statement lists (about 330 bytes each): a statement stays well under what a
# consumer reads of an event (settings.consumer_max_event_bytes, 256 KiB); more make several
STATEMENT_SIZE = 500
# never rewritten: the verifier reads what they say
_NEVER = (*chain.SIGNED,)


class Redacted(BaseModel):
    """One event rewritten in place after it was sealed."""

    model_config = ConfigDict(extra="forbid")

    position: int = Field(ge=1, description="its position in the chain")
    event_id: str = Field(max_length=36)
    before_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of its canonical body as sealed: what its chain link covers",
    )
    after_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of its canonical body as it is now"
    )
    signature: str = Field(
        max_length=200,
        description="base64 Ed25519 signature, by the statement's key, of the RFC 8785 text of"
        " {service, position, event_id, before_sha256, after_sha256}: what a consumer receiving"
        " the event again checks (shared/authenticity.py)",
    )


class LogRedacted(BaseModel):
    """A service's signed statement that it rewrote events of its log in place (personal data
    written in clear, sealed since): each position with the digest of its body as sealed and
    as it is now. The chain is not recomputed; verifiers link each listed position with its
    `before_sha256`."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=50, description="the service whose log this is")
    redactions: list[Redacted]
    head_position: int = Field(ge=0, description="the chain head before the rewrite")
    head_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="the chain hash there")
    reason: str = Field(max_length=500)
    redacted_at: str = Field(max_length=64, description="ISO 8601 instant of the rewrite")
    public_key: str = Field(
        max_length=100, description="base64 raw Ed25519 key (a hint: verify with pins)"
    )
    signature: str = Field(
        max_length=200,
        description="base64 Ed25519 signature of the RFC 8785 text of {service, redactions,"
        " head_position, head_hash, reason, redacted_at}",
    )


@dataclass
class Report:
    service: str
    examined: int = 0  # sealed v1 events of the log looked at
    rewritten: int = 0
    positions: list[int] = field(default_factory=list)
    statement_event_id: str | None = None  # the first statement (the only one, mostly)
    statement_event_ids: list[str] = field(default_factory=list)
    head_position: int = 0  # the chain head before the rewrite
    unsealed: int = 0  # v1 events left unsealed (written meanwhile): run again once sealed
    rebuilt: int | None = None  # events replayed into the read models, if rebuilt

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Refused(Exception):
    """The log does not verify as it is: nothing is rewritten (a statement would vouch for
    bodies no one can check)."""

    def __init__(self, verdict: chain.Verdict) -> None:
        super().__init__(
            f"the log is broken at position {verdict.bad_position}: {verdict.problem};"
            " nothing was rewritten"
        )
        self.verdict = verdict


_OLD_SQL = f"""
SELECT c.position, c.hash AS sealed_hash,
       coalesce((SELECT p.hash FROM event_chain p WHERE p.position = c.position - 1),
                '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
           AS previous_hash,
       {COLUMNS}
FROM event_chain c JOIN events e ON e.event_id = c.event_id
WHERE e.schema_version = 1 AND e.event_type <> ALL($1::text[])
  AND NOT EXISTS (SELECT 1 FROM log_redactions r WHERE r.position = c.position)
  AND c.position > $2
ORDER BY c.position LIMIT $3
"""


async def migrate(
    conn: asyncpg.Connection,
    *,
    service: str,
    signer: signing.Signer,
    # services/<service>/privacy.py: seal_v1(conn, event_type, data, now=now), the sealed
    # (v2) payload of a v1 event, or None when its type holds no person
    seal_v1: Callable[..., Awaitable[dict[str, Any] | None]],
    now: datetime,
    projections: Sequence[proj.Projection] | None = None,
    reason: str = DEFAULT_REASON,
    trusted_keys: keys.KeyRing | None = None,
    statement_size: int = STATEMENT_SIZE,
) -> Report:
    """Rewrite every sealed v1 event of the log whose `seal_v1` payload differs into that
    payload (schema version 2), record the redactions (log_redactions and one signed
    `privacy.log-redacted` event, or one per `statement_size` redactions), then rebuild
    `projections` if given. One transaction;
    Refused (nothing done) if the log does not verify first (against `trusted_keys`' pins
    for `service` when given). A second run rewrites nothing."""
    report = Report(service)
    async with conn.transaction():
        # the sealer waits (it locks this row first), then writers wait on the events table
        await conn.execute("SELECT 1 FROM sealer_state FOR UPDATE")
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        # every event committed so far gets its position (ours is the oldest transaction
        # running now that writers wait)
        while await sealer.seal(conn, limit=5000):
            pass
        verdict = await sealer.verify(conn, service=service, keys=trusted_keys)
        if not verdict.intact:
            raise Refused(verdict)
        report.head_position, head_hash = await sealer.head(conn)
        redactions: list[chain.Redaction] = []
        last = 0
        while page := await conn.fetch(_OLD_SQL, list(_NEVER), last, PAGE):
            last = int(page[-1]["position"])
            updates: list[tuple[Any, str]] = []
            for row in page:
                report.examined += 1
                position = int(row["position"])
                event = from_row(row)
                sealed = await seal_v1(conn, event.event_type, dict(event.data), now=now)
                if sealed is None or sealed == event.data:
                    continue
                before = chain.body_digest(event, position=position)
                # verified above; checked again for the very bytes the statement vouches for
                if chain.link_digest(bytes(row["previous_hash"]), before) != bytes(
                    row["sealed_hash"]
                ):
                    raise RuntimeError(f"the event at {position} changed under the migration")
                text = chain.encode(sealed)
                rewritten = dataclasses.replace(
                    event, data=json.loads(text), schema_version=SEALED_SCHEMA_VERSION
                )
                after = chain.body_digest(rewritten, position=position)
                redactions.append(
                    chain.Redaction(
                        position=position,
                        event_id=str(event.event_id),
                        before=before,
                        after=after,
                    )
                )
                updates.append((event.event_id, text))
            if updates:
                await conn.executemany(
                    "UPDATE events SET data = $2::json, schema_version = $3 WHERE event_id = $1",
                    [(event_id, text, SEALED_SCHEMA_VERSION) for event_id, text in updates],
                )
        # (the verifier's cursors are still open in this transaction: ALTER TABLE needs none)
        await conn.execute("CLOSE ALL")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        report.unsealed = int(
            await conn.fetchval(
                "SELECT count(*) FROM events e WHERE e.schema_version = 1"
                " AND e.event_type <> ALL($1::text[])"
                " AND NOT EXISTS (SELECT 1 FROM event_chain c WHERE c.event_id = e.event_id)",
                list(_NEVER),
            )
        )
        for start in range(0, len(redactions), statement_size):
            report.statement_event_ids.append(
                await _state(
                    conn,
                    service=service,
                    signer=signer,
                    redactions=redactions[start : start + statement_size],
                    head=(report.head_position, head_hash),
                    reason=reason,
                    now=now,
                )
            )
        if redactions:
            report.statement_event_id = report.statement_event_ids[0]
            report.rewritten = len(redactions)
            report.positions = [r.position for r in redactions]
        if projections is not None:
            report.rebuilt = await proj.rebuild(conn, projections)
    return report


async def _state(
    conn: asyncpg.Connection,
    *,
    service: str,
    signer: signing.Signer,
    redactions: Sequence[chain.Redaction],
    head: tuple[int, bytes],
    reason: str,
    now: datetime,
) -> str:
    """Append the signed statement of `redactions` and record them in log_redactions."""
    data = chain.sign_redactions(
        signer,
        service=service,
        redactions=redactions,
        head_position=head[0],
        head_hash=head[1],
        reason=reason,
        at=now,
    )
    LogRedacted.model_validate(data)
    store = PostgresEventStore(conn)
    stream = f"redactions-{service}"
    [recorded] = await store.append(
        stream_type=STREAM_TYPE,
        stream_id=stream,
        expected_version=await store.current_version(stream),
        events=[NewEvent(LOG_REDACTED, data, occurred_at=now)],
        metadata=Metadata(actor=f"{service}-privacy-migration"),
        now=now,
    )
    await conn.executemany(
        "INSERT INTO log_redactions (position, event_id, before_sha256, after_sha256,"
        " statement_event_id, reason, redacted_at, public_key, signature)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            (
                int(r["position"]),
                uuid.UUID(str(r["event_id"])),
                bytes.fromhex(str(r["before_sha256"])),
                bytes.fromhex(str(r["after_sha256"])),
                recorded.event_id,
                reason,
                now,
                signer.public_key,
                str(r["signature"]),
            )
            for r in data["redactions"]
        ],
    )
    return str(recorded.event_id)


REDACTION_HEADER = "ce_redaction"


async def carried(conn: asyncpg.Connection, positions: Sequence[int]) -> dict[int, dict[str, Any]]:
    """What an event rewritten by a redaction carries when it is published again (the relay's
    `ce_redaction` header, the feed's `redaction` field), by position: the digests of its body
    as sealed and as it is now, the key that signed the redaction and its signature
    (shared/authenticity.py redaction_problem checks them). Positions not redacted are left
    out."""
    if not positions:
        return {}
    rows = await conn.fetch(
        "SELECT position, before_sha256, after_sha256, public_key, signature"
        " FROM log_redactions WHERE position = ANY($1::bigint[])",
        list(positions),
    )
    return {
        int(r["position"]): {
            "before_sha256": bytes(r["before_sha256"]).hex(),
            "after_sha256": bytes(r["after_sha256"]).hex(),
            "public_key": r["public_key"],
            "signature": r["signature"],
        }
        for r in rows
    }


def header(redaction: Mapping[str, Any]) -> tuple[str, bytes]:
    """The `ce_redaction` header of a redacted event (see `carried`)."""
    return REDACTION_HEADER, json.dumps(dict(redaction), sort_keys=True).encode()
