"""Partnerships and their lifecycle: decide(state, command, now) -> events; evolve."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.registry import events as ev
from services.registry.domain.organisations import Organisation
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.events import NewEvent, RecordedEvent

__all__ = [
    "TRANSITIONS",
    "ChangeStatus",
    "CooperationField",
    "Partnership",
    "PartnershipKind",
    "PartnershipStatus",
    "ProposePartnership",
    "change_status",
    "evolve_partnership",
    "pair_key",
    "propose",
]


class PartnershipKind(StrEnum):
    TWINNING = "twinning"
    SISTER_CITY = "sister_city"
    COOPERATION_AGREEMENT = "cooperation_agreement"
    PROGRAMME_PARTNERSHIP = "programme_partnership"
    FRIENDSHIP = "friendship"


class PartnershipStatus(StrEnum):
    PROPOSED = "proposed"
    UNDER_DISCUSSION = "under_discussion"
    AGREED = "agreed"  # decided, not yet signed
    SIGNED = "signed"  # active
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class CooperationField(StrEnum):
    HUMANITARIAN_AID = "humanitarian_aid"
    HEALTH_AND_REHABILITATION = "health_and_rehabilitation"
    RECONSTRUCTION = "reconstruction"
    EDUCATION = "education"
    CULTURE = "culture"
    ECONOMY = "economy"
    ENERGY = "energy"
    GOVERNANCE = "governance"
    YOUTH_AND_SPORT = "youth_and_sport"


S = PartnershipStatus
# Forward steps may be skipped (a pact can be signed without a recorded discussion); a signed
# partnership is suspended or ended, a suspended one resumes (signed) or ends; ended is final.
TRANSITIONS: dict[PartnershipStatus, tuple[PartnershipStatus, ...]] = {
    S.PROPOSED: (S.UNDER_DISCUSSION, S.AGREED, S.SIGNED, S.TERMINATED),
    S.UNDER_DISCUSSION: (S.AGREED, S.SIGNED, S.TERMINATED),
    S.AGREED: (S.SIGNED, S.TERMINATED),
    S.SIGNED: (S.SUSPENDED, S.TERMINATED),
    S.SUSPENDED: (S.SIGNED, S.TERMINATED),
    S.TERMINATED: (),
}


def pair_key(a: str, b: str) -> tuple[str, str]:
    first, second = sorted((a, b))
    return first, second


@dataclass(frozen=True, slots=True)
class Partnership:
    partnership_id: str
    version: int = 0
    organisations: tuple[str, str] = ("", "")
    kind: str = ""
    programme: str | None = None
    phase: str | None = None
    fields: tuple[str, ...] = ()
    status: PartnershipStatus = PartnershipStatus.PROPOSED
    last_changed_at: datetime | None = None
    history: tuple[tuple[str, datetime], ...] = ()

    @property
    def exists(self) -> bool:
        return self.version > 0


@dataclass(frozen=True, slots=True)
class ProposePartnership:
    partnership_id: str
    organisations: tuple[str, str]
    kind: PartnershipKind
    occurred_at: datetime
    programme: str | None = None
    phase: str | None = None
    fields: tuple[CooperationField, ...] = ()
    evidence: ev.Evidence | None = None


@dataclass(frozen=True, slots=True)
class ChangeStatus:
    to: PartnershipStatus
    occurred_at: datetime
    evidence: ev.Evidence | None = None


def _not_in_future(occurred_at: datetime, now: datetime, field: str) -> None:
    if occurred_at > now:
        raise ValidationFailed(
            f"{field} {occurred_at.isoformat()} lies in the future: record what already happened",
            extra={"invalid_params": [{"name": field, "reason": "in the future"}]},
        )


def propose(
    state: Partnership,
    command: ProposePartnership,
    *,
    now: datetime,
    acting_for: str | None,
    parties: tuple[Organisation, Organisation],
) -> list[NewEvent]:
    """`acting_for` is the proposing organisation (None for a registry administrator).

    Raises Conflict (id taken), ValidationFailed (self-partnership, unknown organisation,
    future date), Forbidden (proposing for two other organisations)."""
    if state.exists:
        raise Conflict(f"partnership {state.partnership_id} already exists")
    a, b = command.organisations
    if a == b:
        raise ValidationFailed(
            "a partnership needs two different organisations",
            extra={"invalid_params": [{"name": "organisations", "reason": "the same twice"}]},
        )
    for party in parties:
        if not party.exists:
            raise ValidationFailed(
                f"organisation {party.organisation_id} does not exist",
                extra={
                    "invalid_params": [
                        {"name": "organisations", "reason": f"unknown {party.organisation_id}"}
                    ]
                },
            )
    if acting_for is not None and acting_for not in command.organisations:
        raise Forbidden(f"{acting_for} may only propose partnerships it is part of")
    _not_in_future(command.occurred_at, now, "occurred_at")
    return [
        NewEvent(
            ev.PARTNERSHIP_PROPOSED,
            occurred_at=command.occurred_at,
            data=ev.payload(
                ev.PartnershipProposed(
                    partnership_id=command.partnership_id,
                    organisations=[a, b],
                    kind=command.kind.value,
                    programme=command.programme,
                    phase=command.phase,
                    fields=[f.value for f in command.fields],
                    proposed_by=acting_for or "registry",
                    evidence=command.evidence,
                )
            ),
        )
    ]


def change_status(
    state: Partnership,
    command: ChangeStatus,
    *,
    now: datetime,
    acting_for: str | None,
    active_twin: str | None = None,
) -> list[NewEvent]:
    """`active_twin` is another partnership of the same kind between the same pair that is
    signed now, if any. Raises NotFound, Forbidden, ValidationFailed, Conflict (a transition
    that does not make sense from the current status, naming the allowed ones)."""
    if not state.exists:
        raise NotFound(f"partnership {state.partnership_id} does not exist")
    if acting_for is not None and acting_for not in state.organisations:
        raise Forbidden(f"{acting_for} is not part of partnership {state.partnership_id}")
    _not_in_future(command.occurred_at, now, "occurred_at")
    allowed = TRANSITIONS[state.status]
    if command.to not in allowed:
        names = ", ".join(s.value for s in allowed) or "none: it has ended"
        raise Conflict(
            f"a partnership that is {state.status.value} cannot become {command.to.value};"
            f" allowed from {state.status.value}: {names}",
            extra={
                "current_status": state.status.value,
                "allowed_transitions": [s.value for s in allowed],
            },
        )
    if state.last_changed_at is not None and command.occurred_at < state.last_changed_at:
        raise ValidationFailed(
            f"occurred_at {command.occurred_at.isoformat()} is before the previous change"
            f" ({state.last_changed_at.isoformat()})",
            extra={"invalid_params": [{"name": "occurred_at", "reason": "before last change"}]},
        )
    if command.to is PartnershipStatus.SIGNED and active_twin is not None:
        raise Conflict(
            f"partnership {active_twin} of the same kind between these organisations is"
            " already active",
            extra={"active_partnership_id": active_twin},
        )
    return [
        NewEvent(
            ev.PARTNERSHIP_STATUS_CHANGED,
            occurred_at=command.occurred_at,
            data=ev.payload(
                ev.PartnershipStatusChanged(
                    partnership_id=state.partnership_id,
                    organisations=list(state.organisations),
                    kind=state.kind,
                    from_status=state.status.value,
                    to_status=command.to.value,
                    evidence=command.evidence,
                )
            ),
        )
    ]


def evolve_partnership(state: Partnership, event: RecordedEvent) -> Partnership:
    data = event.data
    state = replace(state, version=event.stream_version)
    if event.event_type == ev.PARTNERSHIP_PROPOSED:
        a, b = data["organisations"]
        return replace(
            state,
            organisations=(a, b),
            kind=data["kind"],
            programme=data.get("programme"),
            phase=data.get("phase"),
            fields=tuple(data.get("fields", ())),
            status=S.PROPOSED,
            last_changed_at=event.occurred_at,
            history=((S.PROPOSED.value, event.occurred_at),),
        )
    if event.event_type == ev.PARTNERSHIP_STATUS_CHANGED:
        to = PartnershipStatus(data["to_status"])
        return replace(
            state,
            status=to,
            last_changed_at=event.occurred_at,
            history=(*state.history, (to.value, event.occurred_at)),
        )
    return state
