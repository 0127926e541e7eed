"""What the routes every service has answer (shared/routes.py), and the models and field types
the services' answer models share.

Documentation of what the routes answer (FastAPI puts them in the OpenAPI document; a generated
client parses answers into them). The routes build their answers as they did and are not
re-validated through these models on the way out: the write path answers with a JSONResponse
as it is. Amounts in minor units are integers; quantities, weights and rates are decimal strings
("6.5"); instants are RFC 3339 text.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    """What every answer model derives from: it documents the fields an answer has and lets a
    client keep any it does not know (answers may grow)."""

    model_config = ConfigDict(extra="allow")


# a page's cursor, as every cursor-paged answer that documents it says it
NextCursor = Annotated[
    str | None, Field(description="pass as `cursor` for the next page; null on the last page")
]
# a named person's subject and erasure, as the pledges and registry answers document them
SubjectId = Annotated[
    str | None, Field(description="the person's id for access and erasure (/v1/privacy)")
]
Erased = Annotated[bool | None, Field(description="whether the person was erased")]


class Health(Out):
    status: str = Field(description="`alive` while the process serves")
    service: str


class Readiness(Out):
    status: str = Field(description="`ready`, or `not ready` (503)")
    service: str
    checks: dict[str, bool] = Field(description="each dependency checked: reachable or not")


class EventMetadataOut(Out):
    actor: str | None = Field(description="the key (or process) that recorded it")
    organisation: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    idempotency_key: str | None = None


class RedactionOut(Out):
    """An event rewritten in place after it was sealed (shared/privacy_migration.py)."""

    before_sha256: str = Field(
        description="SHA-256 of its canonical body as sealed: what `hash` links"
    )
    after_sha256: str = Field(description="SHA-256 of its canonical body as shown")
    public_key: str = Field(description="the key that signed it (a hint: verify with pins)")
    signature: str = Field(
        description="base64 Ed25519 signature of the RFC 8785 text of {service, position,"
        " event_id, before_sha256, after_sha256}"
    )


class RecordedEventOut(Out):
    """One event of a service's sealed log."""

    position: int | None = Field(description="global position in the service's log")
    event_id: str
    stream_type: str
    stream_id: str
    stream_version: int = Field(description="the record's version after this event")
    event_type: str = Field(description="dotted, past tense: `pledges.pledge-committed`")
    schema_version: int
    occurred_at: str
    recorded_at: str
    data: dict[str, Any] = Field(description="the event's data, as its JSON Schema says")
    metadata: EventMetadataOut
    hash: str | None = Field(description="the chain hash (hex) sealing it; null until sealed")
    redaction: RedactionOut | None = Field(
        default=None,
        description="only on an event rewritten in place after it was sealed (its personal"
        " data sealed): how it still links to its chain hash",
    )


class StreamHistory(Out):
    stream_id: str
    events: list[RecordedEventOut]
    next_after: int | None = Field(
        description="the last version of this page, to pass as `after` for the next one; null"
        " on the last page"
    )


class Verdict(Out):
    """The hash chain recomputed: intact up to a head, or the first bad position."""

    intact: bool
    checked: int
    head_position: int
    head_hash: str
    bad_position: int | None
    problem: str | None
    checkpoints_checked: int
    recanonicalised: int
    warning: str | None
    redactions_checked: int = Field(
        description="events rewritten in place (their personal data sealed) checked against"
        " the signed privacy.log-redacted statement that covers them"
    )


class SignedHead(Out):
    """A page's last position and chain hash, signed with the service's Ed25519 key."""

    service: str
    position: int
    hash: str
    signed_at: str
    public_key: str
    signature: str


class EventPage(Out):
    events: list[RecordedEventOut]
    next_after: int = Field(description="the cursor for the next page (`after`)")
    signed_head: SignedHead | None


class Written(Out):
    """The answer of a write to a versioned record: its id and new version (also its ETag)."""

    version: int = Field(
        description='the record\'s version after the write; its ETag is `"<version>"`'
    )
