"""Partnerships and their lifecycle: decide(state, command, now) -> events; evolve."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.registry import events as ev
from services.registry.domain.organisations import Organisation
from shared.codec import Event
from shared.domain_checks import (
    Record,
    invalid,
    not_before_last_change,
    not_in_future,
    require_exists,
)
from shared.errors import Conflict, Forbidden
from shared.events import NewEvent

__all__ = [
    "CONSENTED",
    "TRANSITIONS",
    "Agreement",
    "ChangeStatus",
    "CooperationField",
    "Partnership",
    "PartnershipKind",
    "PartnershipStatus",
    "ProposePartnership",
    "StatusChange",
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


# Statuses that bind both organisations: each agrees with its own key, or a registry
# administrator records them with evidence of both organisations' agreement.
CONSENTED = frozenset({S.AGREED, S.SIGNED})


def pair_key(a: str, b: str) -> tuple[str, str]:
    first, second = sorted((a, b))
    return first, second


@dataclass(frozen=True, slots=True)
class Agreement:
    organisation_id: str
    to_status: str
    occurred_at: datetime
    actor: str | None  # the key that recorded it
    evidence: ev.Evidence | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A line of a partnership's history: the status it took, when, by which key, on what
    evidence (the proposal is its first)."""

    status: str
    occurred_at: datetime
    actor: str | None
    evidence: ev.Evidence | None = None


@dataclass(frozen=True, slots=True)
class Partnership(Record):
    partnership_id: str
    version: int = 0
    organisations: tuple[str, str] = ("", "")
    kind: str = ""
    programme: str | None = None
    phase: str | None = None
    fields: tuple[str, ...] = ()
    status: PartnershipStatus = PartnershipStatus.PROPOSED
    proposed_at: datetime | None = None
    signed_at: datetime | None = None  # the first signing: a resumption keeps it
    last_changed_at: datetime | None = None
    history: tuple[StatusChange, ...] = ()
    agreements: tuple[Agreement, ...] = ()  # every one recorded, in order
    pending_from: int = 0  # agreements[pending_from:] were recorded since the last change

    def agreement(self, organisation_id: str, to: PartnershipStatus) -> Agreement | None:
        """`organisation_id`'s agreement to move to `to`, recorded since the last change."""
        for agreement in self.agreements[self.pending_from :]:
            if (agreement.organisation_id, agreement.to_status) == (organisation_id, to.value):
                return agreement
        return None

    def other(self, organisation_id: str) -> str:
        a, b = self.organisations
        return b if organisation_id == a else a


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
        raise invalid(
            "a partnership needs two different organisations",
            name="organisations",
            reason="the same twice",
        )
    for party in parties:
        if not party.exists:
            raise invalid(
                f"organisation {party.organisation_id} does not exist",
                name="organisations",
                reason=f"unknown {party.organisation_id}",
            )
    if acting_for is not None and acting_for not in command.organisations:
        raise Forbidden(f"{acting_for} may only propose partnerships it is part of")
    not_in_future(command.occurred_at, now)
    return [
        ev.CODEC.new(
            ev.PartnershipProposed(
                partnership_id=command.partnership_id,
                organisations=[a, b],
                kind=command.kind.value,
                programme=command.programme,
                phase=command.phase,
                fields=[f.value for f in command.fields],
                proposed_by=acting_for or "registry",
                evidence=command.evidence,
            ),
            occurred_at=command.occurred_at,
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
    signed now, if any. To agreed or signed (CONSENTED), a member records its organisation's
    agreement, and the status changes with the second organisation's; a registry administrator
    (`acting_for` None) changes it at once, with evidence. Raises NotFound, Forbidden,
    ValidationFailed (no evidence from an administrator, dates), Conflict (a transition that
    does not make sense from the current status, naming the allowed ones)."""
    require_exists(state, f"partnership {state.partnership_id}")
    if acting_for is not None and acting_for not in state.organisations:
        raise Forbidden(f"{acting_for} is not part of partnership {state.partnership_id}")
    not_in_future(command.occurred_at, now)
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
    not_before_last_change(command.occurred_at, state.last_changed_at, now=now)
    if command.to is PartnershipStatus.SIGNED and active_twin is not None:
        raise Conflict(
            f"partnership {active_twin} of the same kind between these organisations is"
            " already active",
            extra={"active_partnership_id": active_twin},
        )
    if command.to not in CONSENTED:
        return [_status_changed(state, command, command.occurred_at)]
    if acting_for is None:
        if command.evidence is None:
            raise invalid(
                f"a registry administrator moves a partnership to {command.to.value} only with"
                " evidence that both organisations agreed (a document or article); otherwise"
                " each organisation records its agreement with its own key",
                name="evidence",
                reason="required from a registry administrator",
            )
        return [_status_changed(state, command, command.occurred_at)]
    if state.agreement(acting_for, command.to) is not None:
        return []  # on record already; the other organisation has not agreed yet
    events = [
        ev.CODEC.new(
            ev.PartnershipAgreementRecorded(
                partnership_id=state.partnership_id,
                organisations=list(state.organisations),
                kind=state.kind,
                organisation_id=acting_for,
                from_status=state.status.value,
                to_status=command.to.value,
                evidence=command.evidence,
            ),
            occurred_at=command.occurred_at,
        )
    ]
    theirs = state.agreement(state.other(acting_for), command.to)
    if theirs is not None:  # the second agreement: the change happened with it
        events.append(_status_changed(state, command, max(command.occurred_at, theirs.occurred_at)))
    return events


def _status_changed(state: Partnership, command: ChangeStatus, occurred_at: datetime) -> NewEvent:
    return ev.CODEC.new(
        ev.PartnershipStatusChanged(
            partnership_id=state.partnership_id,
            organisations=list(state.organisations),
            kind=state.kind,
            from_status=state.status.value,
            to_status=command.to.value,
            evidence=command.evidence,
        ),
        occurred_at=occurred_at,
    )


def evolve_partnership(state: Partnership, event: Event[Any]) -> Partnership:
    state = replace(state, version=event.stream_version)
    match event.payload:
        case ev.PartnershipProposed() as e:
            a, b = e.organisations
            return replace(
                state,
                organisations=(a, b),
                kind=e.kind,
                programme=e.programme,
                phase=e.phase,
                fields=tuple(e.fields),
                status=S.PROPOSED,
                proposed_at=event.occurred_at,
                last_changed_at=event.occurred_at,
                history=(_change(S.PROPOSED, event, e.evidence),),
            )
        case ev.PartnershipStatusChanged() as e:
            to = PartnershipStatus(e.to_status)
            return replace(
                state,
                status=to,
                signed_at=state.signed_at
                or (event.occurred_at if to is PartnershipStatus.SIGNED else None),
                last_changed_at=event.occurred_at,
                history=(*state.history, _change(to, event, e.evidence)),
                pending_from=len(state.agreements),
            )
        case ev.PartnershipAgreementRecorded() as e:
            agreement = Agreement(
                organisation_id=e.organisation_id,
                to_status=e.to_status,
                occurred_at=event.occurred_at,
                actor=event.metadata.actor,
                evidence=e.evidence,
            )
            return replace(state, agreements=(*state.agreements, agreement))
    return state


def _change(to: PartnershipStatus, event: Event[Any], evidence: ev.Evidence | None) -> StatusChange:
    return StatusChange(
        status=to.value,
        occurred_at=event.occurred_at,
        actor=event.metadata.actor,
        evidence=evidence,
    )
