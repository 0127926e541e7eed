"""Records as the registry API answers them: an organisation or a partnership by one function,
whether from its read model's row (now) or from its state folded up to an instant (`as_of`
reads: the same keys, with `as_of`), and API keys as listed (never their secret nor its hash)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.registry import domain
from services.registry import events as ev
from shared import api_keys
from shared.read_recent import RECENT as RECENT
from shared.read_recent import recent as recent

REGISTRY = "registry"


def organisation(
    *,
    organisation_id: str,
    name: str,
    kind: str,
    country: str,
    region: str | None,
    aliases: Sequence[str],
    coordinates: Mapping[str, float] | None,
    parent_id: str | None,
    version: int,
    contacts: list[dict[str, Any]] | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """An organisation as answered, now (its read model's row: queries) or as it stood at
    `as_of` (its state folded up to then: `organisation_as_of`), the same keys either way;
    its contacts as shown (None: not shown, no key)."""
    answer: dict[str, Any] = {
        "organisation_id": organisation_id,
        "name": name,
        "kind": kind,
        "country": country,
        "region": region,
        "aliases": list(aliases),
        "coordinates": None if coordinates is None else dict(coordinates),
        "parent_id": parent_id,
        "version": version,
    }
    if contacts is not None:
        answer["contacts"] = contacts
    return answer if as_of is None else {**answer, "as_of": as_of.isoformat()}


def organisation_as_of(
    state: domain.Organisation, *, contacts: list[dict[str, Any]] | None, as_of: datetime
) -> dict[str, Any]:
    """An organisation as it stood at `as_of`: `organisation` of its state folded up to then;
    its contacts as shown (None: not shown)."""
    return organisation(
        organisation_id=state.organisation_id,
        name=state.name,
        kind=state.kind,
        country=state.country,
        region=state.region,
        aliases=state.aliases,
        coordinates=state.coordinates,
        parent_id=state.parent_id,
        version=state.version,
        contacts=contacts,
        as_of=as_of,
    )


def partnership(
    *,
    partnership_id: str,
    organisations: Sequence[str],
    kind: str,
    programme: str | None,
    phase: str | None,
    fields: Sequence[str],
    status: str,
    proposed_at: datetime,
    signed_at: datetime | None,
    changed_at: datetime,
    history: Sequence[Mapping[str, Any]],
    agreements: Sequence[Mapping[str, Any]],
    version: int,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """A partnership as answered, now (its read model's row: queries) or as it stood at
    `as_of` (its state folded up to then: `partnership_as_of`), the same keys either way.
    `history` and `agreements`: every entry, as the read model's lines (projections._entry),
    instants as datetimes or ISO 8601 text, evidence as JSON values; each instant is answered
    in UTC, whatever offset it was recorded with."""
    answer = {
        "partnership_id": partnership_id,
        "organisations": list(organisations),
        "kind": kind,
        "programme": programme,
        "phase": phase,
        "fields": list(fields),
        "status": status,
        "proposed_at": _utc(proposed_at),
        "signed_at": None if signed_at is None else _utc(signed_at),
        "changed_at": _utc(changed_at),
        "history": [
            {
                "status": h["status"],
                "occurred_at": _utc(h["occurred_at"]),
                "evidence": h["evidence"],
                "actor": h["actor"],
            }
            for h in recent(history)
        ],
        "history_total": len(history),
        "agreements": [
            {
                "organisation_id": a["organisation_id"],
                "to_status": a["to_status"],
                "occurred_at": _utc(a["occurred_at"]),
                "evidence": a["evidence"],
                "actor": a["actor"],
            }
            for a in recent(agreements)
        ],
        "agreements_total": len(agreements),
        "version": version,
    }
    return answer if as_of is None else {**answer, "as_of": as_of.isoformat()}


def partnership_as_of(state: domain.Partnership, *, as_of: datetime) -> dict[str, Any]:
    """A partnership as it stood at `as_of`: `partnership` of its state folded up to then."""
    if state.proposed_at is None or state.last_changed_at is None:
        raise ValueError(f"partnership {state.partnership_id} was not proposed by {as_of}")
    return partnership(
        partnership_id=state.partnership_id,
        organisations=state.organisations,
        kind=state.kind,
        programme=state.programme,
        phase=state.phase,
        fields=state.fields,
        status=state.status.value,
        proposed_at=state.proposed_at,
        signed_at=state.signed_at,
        changed_at=state.last_changed_at,
        history=[
            {
                "status": h.status,
                "occurred_at": h.occurred_at,
                "evidence": _evidence(h.evidence),
                "actor": h.actor,
            }
            for h in state.history
        ],
        agreements=[
            {
                "organisation_id": a.organisation_id,
                "to_status": a.to_status,
                "occurred_at": a.occurred_at,
                "evidence": _evidence(a.evidence),
                "actor": a.actor,
            }
            for a in state.agreements
        ],
        version=state.version,
        as_of=as_of,
    )


def _evidence(evidence: ev.Evidence | None) -> dict[str, Any] | None:
    """Evidence as the read model keeps it (projections._entry)."""
    return None if evidence is None else evidence.model_dump(mode="json")


def _utc(value: datetime | str) -> str:
    """An instant in UTC, as the read model's timestamp columns answer it (`+00:00`)."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(UTC).isoformat()


def _instant(value: datetime | None) -> str | None:
    """An instant in UTC as every answer writes it (`...Z`, as pydantic serialises the answers
    that go through their model), also where a write's answer is sent as it is (a revocation)."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def api_key(
    row: asyncpg.Record, *, now: datetime, used: Mapping[str, datetime] | None = None
) -> dict[str, Any]:
    """A key as answered (JSON values): never its secret nor the secret's hash. `used`: when
    the other services last saw it (queries.key_uses); `last_used_at` is the latest of every
    service."""
    last_used_in = dict(used or {})
    if row["last_used_at"] is not None:
        last_used_in[REGISTRY] = row["last_used_at"]
    return {
        "key_id": row["key_id"],
        "organisation_id": row["organisation"],
        "roles": sorted(row["roles"]),
        "label": row["label"],
        "status": api_keys.status_of(row, now),
        "created_at": _instant(row["created_at"]),
        "expires_at": _instant(row["expires_at"]),
        "rotated_at": _instant(row["rotated_at"]),
        "revoked_at": _instant(row["revoked_at"]),
        "last_used_at": _instant(max(last_used_in.values(), default=None)),
        "last_used_in": {s: _instant(at) for s, at in sorted(last_used_in.items())},
    }
