"""What the registry API answers.

Documentation of what the routes answer (FastAPI puts them in the OpenAPI document; a generated
client parses answers into them). The routes build their answers as they did and are not
re-validated through these models on the way out: the write path answers with a JSONResponse
as it is. Amounts in minor units are integers; quantities, weights and rates are decimal strings
("6.5"); instants are RFC 3339 text.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class OrganisationPageItemCoordinates(_Out):
    lat: float
    lon: float


class OrganisationPageItem(_Out):
    organisation_id: str
    name: str
    kind: str
    country: str
    region: str | None
    aliases: list[str]
    coordinates: OrganisationPageItemCoordinates | None
    parent_id: str | None
    version: int


class OrganisationPage(_Out):
    items: list[OrganisationPageItem]
    next_cursor: str | None


class OrganisationContact(_Out):
    name: str
    role: str
    email: str | None


class Organisation(_Out):
    organisation_id: str
    name: str
    kind: str
    country: str
    region: str | None
    aliases: list[str]
    coordinates: OrganisationPageItemCoordinates | None
    parent_id: str | None
    version: int
    contacts: list[OrganisationContact] | None = None
    as_of: str | None = None


class NetworkOrganisationCoordinates(_Out):
    lat: float | None = None
    lon: float | None = None


class NetworkOrganisation(_Out):
    organisation_id: str
    name: str | None = None
    kind: str | None = None
    country: str | None = None
    region: str | None = None
    aliases: list[str] | None = None
    coordinates: NetworkOrganisationCoordinates | None = None
    parent_id: str | None
    version: int


class NetworkPartnerPartnershipHistoryEvidence(_Out):
    note: str | None = None
    reference: str | None = None


class NetworkPartnerPartnershipHistory(_Out):
    actor: str
    status: str
    evidence: NetworkPartnerPartnershipHistoryEvidence | None
    occurred_at: str


class NetworkPartnerPartnership(_Out):
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
    history: list[NetworkPartnerPartnershipHistory]
    agreements: list[Any]
    version: int


class NetworkPartner(_Out):
    organisation_id: str
    name: str
    country: str
    kind: str
    partnership: NetworkPartnerPartnership


class Network(_Out):
    organisation: NetworkOrganisation | None = None
    partners: list[NetworkPartner] | None = None


class PartnershipPageItemHistoryEvidence(_Out):
    note: str | None = None
    reference: str | None = None


class PartnershipPageItemHistory(_Out):
    actor: str
    status: str
    evidence: PartnershipPageItemHistoryEvidence | None
    occurred_at: str


class PartnershipPageItem(_Out):
    partnership_id: str
    organisations: list[str]
    kind: str
    programme: str | None
    phase: str | None
    fields: list[str]
    status: str
    proposed_at: str
    signed_at: str | None
    changed_at: str
    history: list[PartnershipPageItemHistory]
    agreements: list[Any]
    version: int


class PartnershipPage(_Out):
    items: list[PartnershipPageItem]
    next_cursor: str | None


class PartnershipHistoryEvidence(_Out):
    note: str | None = None
    reference: str | None = None


class PartnershipHistory(_Out):
    actor: str | None = None
    status: str
    evidence: PartnershipHistoryEvidence | None = None
    occurred_at: str


class PartnershipAgreement(_Out):
    actor: str
    evidence: PartnershipHistoryEvidence | None = None
    to_status: str
    occurred_at: str
    organisation_id: str


class Partnership(_Out):
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
    history: list[PartnershipHistory]
    agreements: list[PartnershipAgreement]
    version: int
    as_of: str | None = None


class OrganisationChanged(_Out):
    organisation_id: str
    version: int


class PartnershipChanged(_Out):
    partnership_id: str
    status: str
    version: int


class PartnershipAwaiting(_Out):
    partnership_id: str
    status: str
    version: int
    agreed: list[str]
    awaiting_agreement_of: list[str]
