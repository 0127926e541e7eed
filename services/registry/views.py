"""Records as the registry API answers them when they come from a fold rather than a read model
(`as_of` reads), and API keys as listed (never their secret nor its hash)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.registry import domain
from shared import api_keys
from shared.read_recent import RECENT as RECENT
from shared.read_recent import recent as recent

REGISTRY = "registry"


def organisation_as_of(
    state: domain.Organisation, *, contacts: list[dict[str, Any]] | None, as_of: datetime
) -> dict[str, Any]:
    """An organisation as it stood at `as_of`; its contacts as shown (None: not shown)."""
    folded = asdict(state)
    folded["aliases"] = list(state.aliases)
    if contacts is None:
        folded.pop("contacts")
    else:
        folded["contacts"] = contacts
    return {**folded, "as_of": as_of.isoformat()}


def partnership_as_of(state: domain.Partnership, *, as_of: datetime) -> dict[str, Any]:
    """A partnership as it stood at `as_of`, shaped as its read model's view."""
    return {
        "partnership_id": state.partnership_id,
        "organisations": list(state.organisations),
        "kind": state.kind,
        "programme": state.programme,
        "phase": state.phase,
        "fields": list(state.fields),
        "status": state.status.value,
        "history": [{"status": s, "occurred_at": t.isoformat()} for s, t in recent(state.history)],
        "history_total": len(state.history),
        "agreements": [
            {
                "organisation_id": a.organisation_id,
                "to_status": a.to_status,
                "occurred_at": a.occurred_at.isoformat(),
                "actor": a.actor,
            }
            for a in recent(state.agreements)
        ],
        "agreements_total": len(state.agreements),
        "version": state.version,
        "as_of": as_of.isoformat(),
    }


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
