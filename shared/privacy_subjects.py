"""The data subjects a service recorded (`privacy_subjects`): finding them by name, what the
log holds of each (an access request), and erasing them, on request or when retention runs out.

Erasing destroys the subject's key and fingerprint (shared/privacy.py seals with them), so every
view, history, export, replay and rebuild shows their personal fields as ERASED from then on; a
`privacy.subject-erased` event records that it happened (who asked, when, the legal basis: no
personal data).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from shared import privacy, sealed
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent

SUBJECT_ERASED = "privacy.subject-erased"
STREAM_TYPE = "subject"
DEFAULT_RETENTION = timedelta(days=730)
RETENTION_BATCH = 100  # subjects erased per transaction by the worker

LegalBasis = Literal[
    "gdpr-art-17",  # the person asked (right to erasure; UK GDPR the same)
    "gdpr-art-21",  # the person objected
    "retention",  # the retention period ran out (the worker)
    "legal-obligation",
    "other",
]


class SubjectErased(BaseModel):
    """A subject's key was destroyed: their personal fields are unreadable from now on,
    everywhere. Names no one: the subject id is a random identifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_id: str = Field(pattern=sealed.SUBJECT_ID)
    recorded_by: str = Field(max_length=100, description="the organisation that recorded them")
    requested_by: str = Field(
        max_length=100, description="who asked: an organisation or `retention`"
    )
    legal_basis: LegalBasis
    erased_at: datetime


@dataclass(frozen=True, slots=True)
class Subject:
    subject_id: str
    organisation_id: str
    created_at: datetime
    last_recorded_at: datetime
    erased_at: datetime | None
    erased_by: str | None
    legal_basis: str | None

    def json(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id,
            "organisation_id": self.organisation_id,
            "created_at": self.created_at.isoformat(),
            "last_recorded_at": self.last_recorded_at.isoformat(),
            "erased": self.erased_at is not None,
            "erased_at": self.erased_at.isoformat() if self.erased_at else None,
            "erased_by": self.erased_by,
            "legal_basis": self.legal_basis,
        }


_SUBJECT_COLUMNS = (
    "subject_id, organisation_id, created_at, last_recorded_at, erased_at, erased_by, legal_basis"
)


def _subject(row: asyncpg.Record) -> Subject:
    return Subject(**{k: row[k] for k in _SUBJECT_COLUMNS.split(", ")})


async def subject(conn: asyncpg.Connection, subject_id: str) -> Subject | None:
    row = await conn.fetchrow(
        f"SELECT {_SUBJECT_COLUMNS} FROM privacy_subjects WHERE subject_id = $1", subject_id
    )
    return None if row is None else _subject(row)


async def find(conn: asyncpg.Connection, *, organisation: str | None, name: str) -> list[Subject]:
    """The subjects (not erased) recorded under `name`: by `organisation`, or by any
    organisation of the service (None)."""
    if organisation is not None:
        prints = [await privacy.fingerprint(conn, organisation, name)]
    else:
        orgs = await conn.fetch(
            "SELECT DISTINCT organisation_id FROM privacy_subjects WHERE data_key IS NOT NULL"
        )
        prints = [await privacy.fingerprint(conn, str(r["organisation_id"]), name) for r in orgs]
    rows = await conn.fetch(
        f"SELECT {_SUBJECT_COLUMNS} FROM privacy_subjects WHERE fingerprint = ANY($1::bytea[])"
        " ORDER BY created_at, subject_id",
        prints,
    )
    return [_subject(r) for r in rows]


async def occurrences(conn: asyncpg.Connection, subject_id: str) -> list[dict[str, Any]]:
    """Every event holding the subject (privacy_occurrences, kept by `projection`), with the
    subject as each recorded them, opened."""
    rows = await conn.fetch(
        "SELECT e.event_id, e.event_type, e.stream_id, e.recorded_at, e.data"
        " FROM privacy_occurrences o JOIN events e ON e.event_id = o.event_id"
        " WHERE o.subject_id = $1 ORDER BY e.id",
        subject_id,
    )
    keys = await privacy.keys_of(conn, [subject_id])
    out = []
    for row in rows:
        data = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
        persons: list[dict[str, Any]] = []
        _collect(data, subject_id, persons)
        out.append(
            {
                "event_id": str(row["event_id"]),
                "event_type": row["event_type"],
                "stream_id": row["stream_id"],
                "recorded_at": row["recorded_at"].isoformat(),
                "persons": [
                    privacy.opened(p, keys.get(subject_id), held=subject_id in keys)
                    for p in persons
                ],
            }
        )
    return out


def _collect(value: Any, subject_id: str, into: list[dict[str, Any]]) -> None:
    if isinstance(value, Mapping):
        if sealed.is_sealed(value) and value["subject_id"] == subject_id:
            into.append(dict(value))
            return
        for v in value.values():
            _collect(v, subject_id, into)
    elif isinstance(value, list):
        for v in value:
            _collect(v, subject_id, into)


async def erase(
    conn: asyncpg.Connection,
    subject_id: str,
    *,
    requested_by: str,
    legal_basis: LegalBasis,
    metadata: Metadata,
    now: datetime,
) -> Subject | None:
    """Destroy the subject's key and fingerprint, record a `privacy.subject-erased` event, and
    drop the stored answers of idempotent writes that showed the person. None: no such subject.
    Erasing an erased subject changes nothing (its first erasure stands)."""
    row = await conn.fetchrow(
        "UPDATE privacy_subjects SET data_key = NULL, fingerprint = NULL, erased_at = $2,"
        " erased_by = $3, legal_basis = $4 WHERE subject_id = $1 AND erased_at IS NULL"
        f" RETURNING {_SUBJECT_COLUMNS}",
        subject_id,
        now,
        requested_by,
        legal_basis,
    )
    if row is None:
        return await subject(conn, subject_id)
    erased = _subject(row)
    event = SubjectErased(
        subject_id=subject_id,
        recorded_by=erased.organisation_id,
        requested_by=requested_by,
        legal_basis=legal_basis,
        erased_at=now,
    )
    await PostgresEventStore(conn).append(
        stream_type=STREAM_TYPE,
        stream_id=f"{STREAM_TYPE}-{subject_id}",
        expected_version=0,
        events=[NewEvent(SUBJECT_ERASED, event.model_dump(mode="json"), occurred_at=now)],
        metadata=metadata,
        now=now,
    )
    # an idempotent write's stored answer is a view, shown to the writer on a retry: it may
    # show the person in clear
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE strpos(response::text, $1) > 0", f'"{subject_id}"'
    )
    return erased


async def erase_expired(
    conn: asyncpg.Connection,
    *,
    due_sql: str,
    retention: timedelta,
    now: datetime,
    metadata: Metadata,
    limit: int = RETENTION_BATCH,
) -> list[str]:
    """Erase, with legal basis `retention`, the subjects `due_sql` names: a query of the
    service taking $1 (the cut-off instant: now - retention) and $2 (a limit), answering
    `subject_id`s. Returns the ids erased."""
    rows = await conn.fetch(due_sql, now - retention, limit)
    erased = []
    for row in rows:
        done = await erase(
            conn,
            str(row["subject_id"]),
            requested_by="retention",
            legal_basis="retention",
            metadata=metadata,
            now=now,
        )
        if done is not None and done.erased_at == now:
            erased.append(done.subject_id)
    return erased
