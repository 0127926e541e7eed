"""What the registry API answers: documentation, not re-validated on the way out (how these
models are used and how they write amounts, quantities and instants: shared/responses.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.responses import Erased, Out, SubjectId


class OrganisationPageItemCoordinates(Out):
    lat: float
    lon: float


class OrganisationPageItem(Out):
    organisation_id: str
    name: str
    kind: str
    country: str
    region: str | None
    aliases: list[str]
    coordinates: OrganisationPageItemCoordinates | None
    parent_id: str | None
    version: int


class OrganisationPage(Out):
    items: list[OrganisationPageItem]
    next_cursor: str | None


class OrganisationContact(Out):
    name: str = Field(description='the name; "(erased)" once the person was erased')
    role: str
    email: str | None = Field(default=None, description='"(erased)" once erased')
    subject_id: SubjectId = None
    erased: Erased = None


class Organisation(OrganisationPageItem):
    contacts: list[OrganisationContact] | None = None
    as_of: str | None = None


class NetworkOrganisationCoordinates(Out):
    lat: float | None = None
    lon: float | None = None


class NetworkOrganisation(Out):
    organisation_id: str
    name: str | None = None
    kind: str | None = None
    country: str | None = None
    region: str | None = None
    aliases: list[str] | None = None
    coordinates: NetworkOrganisationCoordinates | None = None
    parent_id: str | None
    version: int


class NetworkPartnerPartnershipHistoryEvidence(Out):
    note: str | None = None
    reference: str | None = None


class NetworkPartnerPartnershipHistory(Out):
    actor: str
    status: str
    evidence: NetworkPartnerPartnershipHistoryEvidence | None
    occurred_at: str


class NetworkPartnerPartnership(Out):
    partnership_id: str
    organisations: list[str]
    kind: str
    programme: str | None
    phase: str | None
    fields: list[Any]
    status: str
    proposed_at: str
    signed_at: str | None
    changed_at: str
    history: Sequence[NetworkPartnerPartnershipHistory] = Field(
        description="the latest 100 status changes"
    )
    history_total: int = Field(description="how many status changes the partnership has")
    agreements: list[Any] = Field(description="the latest 100 agreements")
    agreements_total: int = Field(description="how many agreements were recorded")
    version: int


class NetworkPartner(Out):
    organisation_id: str
    name: str
    country: str
    kind: str
    partnership: NetworkPartnerPartnership


class Network(Out):
    organisation: NetworkOrganisation | None = None
    partners: list[NetworkPartner] | None = None
    next_cursor: str | None


# a page's partnership is a network's, each schema under its own name


class PartnershipPageItemHistoryEvidence(NetworkPartnerPartnershipHistoryEvidence):
    pass


class PartnershipPageItemHistory(NetworkPartnerPartnershipHistory):
    evidence: PartnershipPageItemHistoryEvidence | None


class PartnershipPageItem(NetworkPartnerPartnership):
    fields: list[str]
    history: Sequence[PartnershipPageItemHistory] = Field(
        description="the latest 100 status changes"
    )


class PartnershipPage(Out):
    items: list[PartnershipPageItem]
    next_cursor: str | None


class PartnershipHistoryEvidence(NetworkPartnerPartnershipHistoryEvidence):
    pass


class PartnershipHistory(Out):
    actor: str | None = None
    status: str
    evidence: PartnershipHistoryEvidence | None = None
    occurred_at: str


class PartnershipAgreement(Out):
    actor: str
    evidence: PartnershipHistoryEvidence | None = None
    to_status: str
    occurred_at: str
    organisation_id: str


class Partnership(Out):
    partnership_id: str
    organisations: list[str]
    kind: str
    programme: str | None
    phase: str | None
    fields: list[str]
    status: str
    proposed_at: str | None = None
    signed_at: str | None = None
    changed_at: str | None = None
    history: list[PartnershipHistory] = Field(description="the latest 100 status changes")
    history_total: int = Field(description="how many status changes the partnership has")
    agreements: list[PartnershipAgreement] = Field(description="the latest 100 agreements")
    agreements_total: int = Field(description="how many agreements were recorded")
    version: int
    as_of: str | None = None


class OrganisationChanged(Out):
    organisation_id: str
    version: int


class PartnershipChanged(Out):
    partnership_id: str
    status: str
    version: int


class PartnershipAwaiting(PartnershipChanged):
    agreed: list[str]
    awaiting_agreement_of: list[str]


class ApiKey(BaseModel):
    """A key as listed: never its secret."""

    key_id: str = Field(pattern=r"^[0-9a-f]+$", max_length=64)
    organisation_id: str
    roles: list[str]
    label: str
    status: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None = Field(description="null: never (keys the operator issued)")
    rotated_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="the latest use in any service (to the minute: each API process records a"
        " use at most once a minute, and the workers of pledges and shipments report theirs to"
        " the registry about once a minute, so a use there shows within about two minutes)"
    )
    last_used_in: dict[str, datetime] = Field(
        description="the last use at each service that saw the key (registry, pledges,"
        " shipments); `last_used_at` is the latest of them",
        json_schema_extra={"example": {"registry": "2026-03-01T09:12:00Z"}},
    )


class IssuedApiKey(ApiKey):
    token: str = Field(
        pattern=r"^twa_[0-9a-f]+_[A-Za-z0-9_-]+$",
        description="the full key for `Authorization: Bearer <token>`: shown in this answer"
        " only, keep it now (the registry keeps only a hash)",
    )


class ApiKeyPage(BaseModel):
    items: list[ApiKey]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class ApiKeyUsesRecorded(BaseModel):
    recorded: int = Field(ge=0, description="how many of the keys named the registry holds")
