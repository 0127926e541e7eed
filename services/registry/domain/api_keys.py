"""Organisations' API keys: who may issue, rotate and revoke which keys, and what each records.

Pure: the caller's key (`Manager`), the key's current state and `now` come in; events come
out. The policy itself (lifetimes, grantable roles) is shared/api_keys.py's, which every
service reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from services.registry import events as ev
from shared import key_policy as policy
from shared.codec import Event
from shared.domain_checks import invalid
from shared.errors import Conflict, Forbidden, NotFound
from shared.events import NewEvent
from shared.principals import Principal, Role


@dataclass(frozen=True, slots=True)
class Manager(Principal):
    """The key asking for a change: a principal, named in the key events it records."""

    def actor(self) -> ev.KeyActor:
        return ev.KeyActor(key_id=self.key_id, organisation=self.organisation)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the registry holds it (its row); `organisation_id` None: no such key."""

    key_id: str
    organisation_id: str | None = None
    roles: tuple[str, ...] = ()
    label: str = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    version: int = 0  # of its stream, api_key-<key id> (0: issued outside the log, or none)


def check_manages(manager: Manager, organisation_id: str) -> None:
    """Forbidden unless `manager` may manage `organisation_id`'s keys."""
    if not manager.has(*policy.MANAGERS):
        raise Forbidden("this key lacks the role needed here (one of: org_admin, registry_admin)")
    if Role.REGISTRY_ADMIN not in manager.roles and organisation_id != manager.organisation:
        raise Forbidden(
            f"this key belongs to organisation {manager.organisation} and may not manage the"
            f" keys of {organisation_id}"
        )


def check_reads(manager: Manager, organisation_id: str) -> None:
    """Forbidden unless `manager` may list `organisation_id`'s keys (auditors read all)."""
    if Role.AUDITOR in manager.roles:
        return
    check_manages(manager, organisation_id)


def expiry(requested: datetime | None, *, now: datetime) -> datetime:
    """When a key issued or rotated `now` expires: `requested`, or DEFAULT_LIFETIME ahead.
    ValidationFailed (naming `expires_at`) unless it lies after now and at most MAX_LIFETIME
    ahead."""
    if requested is None:
        return now + policy.DEFAULT_LIFETIME
    latest = now + policy.MAX_LIFETIME
    if requested <= now or requested > latest:
        reason = (
            "must lie in the future"
            if requested <= now
            else f"must be at most {policy.MAX_LIFETIME.days} days ahead"
            f" (by {latest.astimezone(UTC).isoformat()})"
        )
        raise invalid(f"expires_at {reason}", name="expires_at", reason=reason)
    return requested


def _check_grants(manager: Manager, roles: Sequence[str], *, doing: str) -> None:
    allowed = {r.value for r in policy.grantable(manager.roles)}
    beyond = sorted(set(roles) - allowed)
    if beyond:
        raise Forbidden(
            f"this key may not {doing} a key with the role(s) {', '.join(beyond)}"
            f" (it may grant: {', '.join(sorted(allowed))})"
        )


def _operator_expiry(requested: datetime | None, *, now: datetime) -> datetime | None:
    """An operator's key expires when asked (None: never), not under the HTTP policy; it must
    lie ahead (ValidationFailed naming `expires_at`)."""
    if requested is not None and requested <= now:
        raise invalid("expires_at must lie in the future", name="expires_at", reason="in the past")
    return requested


def issue(
    *,
    key_id: str,
    organisation_id: str,
    roles: Sequence[Role],
    label: str,
    expires_at: datetime | None,
    secret_sha256: str,
    manager: Manager,
    now: datetime,
    by_operator: bool = False,
) -> list[NewEvent]:
    """`by_operator`: `twinaid keys issue`, run by whoever runs the databases: the key expires
    at `expires_at` exactly (None: never), not under the HTTP policy."""
    check_manages(manager, organisation_id)
    names = sorted({r.value for r in roles})
    if not names:
        raise invalid("a key needs at least one role", name="roles", reason="empty")
    _check_grants(manager, names, doing="issue")
    data = ev.ApiKeyIssued(
        key_id=key_id,
        organisation_id=organisation_id,
        roles=names,
        label=label,
        expires_at=(
            _operator_expiry(expires_at, now=now) if by_operator else expiry(expires_at, now=now)
        ),
        secret_sha256=secret_sha256,
        by=manager.actor(),
    )
    return [ev.CODEC.new(data, occurred_at=now)]


def require_key_of(state: ApiKey, organisation_id: str) -> ApiKey:
    """NotFound unless the key exists and belongs to `organisation_id` (another
    organisation's key is not found here, not forbidden: its id says nothing)."""
    if state.organisation_id != organisation_id:
        raise NotFound(f"organisation {organisation_id} has no API key {state.key_id}")
    return state


def _require_live_key_of(state: ApiKey, organisation_id: str, manager: Manager) -> None:
    """What rotating or revoking a key needs: `manager` manages `organisation_id`, the key is
    the organisation's (require_key_of) and is not revoked (409: a revoked key stays so)."""
    check_manages(manager, organisation_id)
    require_key_of(state, organisation_id)
    if state.revoked_at is not None:
        raise Conflict(
            f"API key {state.key_id} was already revoked at {state.revoked_at.isoformat()}: a"
            " revoked key stays revoked (issue a new one instead)"
        )


def rotate(
    state: ApiKey,
    *,
    organisation_id: str,
    expires_at: datetime | None,
    secret_sha256: str,
    manager: Manager,
    now: datetime,
) -> list[NewEvent]:
    _require_live_key_of(state, organisation_id, manager)
    _check_grants(manager, state.roles, doing="rotate")
    data = ev.ApiKeyRotated(
        key_id=state.key_id,
        organisation_id=organisation_id,
        roles=list(state.roles),
        label=state.label,
        expires_at=expiry(expires_at, now=now),
        secret_sha256=secret_sha256,
        by=manager.actor(),
    )
    return [ev.CODEC.new(data, occurred_at=now)]


def revoke(
    state: ApiKey,
    *,
    organisation_id: str,
    reason: str | None,
    manager: Manager,
    now: datetime,
) -> list[NewEvent]:
    _require_live_key_of(state, organisation_id, manager)
    data = ev.ApiKeyRevoked(
        key_id=state.key_id, organisation_id=organisation_id, reason=reason, by=manager.actor()
    )
    return [ev.CODEC.new(data, occurred_at=now)]


def evolve_key(state: ApiKey, event: Event[Any]) -> ApiKey:
    state = replace(state, version=event.stream_version)
    match event.payload:
        case ev.ApiKeyIssued() | ev.ApiKeyRotated() as e:
            return replace(
                state,
                organisation_id=e.organisation_id,
                roles=tuple(e.roles),
                label=e.label,
                expires_at=e.expires_at,
            )
        case ev.ApiKeyRevoked():
            return replace(state, revoked_at=event.occurred_at)
    return state
