"""Facts the registry records, with the JSON Schema of each (see schemas/ and test_contracts).

Names are stable; a changed shape gets a new schema version and an upcaster.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STREAM_ORGANISATION = "organisation"
STREAM_PARTNERSHIP = "partnership"

ORGANISATION_REGISTERED = "registry.organisation-registered"
ORGANISATION_RENAMED = "registry.organisation-renamed"
ORGANISATION_ALIAS_ADDED = "registry.organisation-alias-added"
ORGANISATION_CORRECTED = "registry.organisation-corrected"
ORGANISATION_CONTACTS_CHANGED = "registry.organisation-contacts-changed"
PARTNERSHIP_PROPOSED = "registry.partnership-proposed"
PARTNERSHIP_STATUS_CHANGED = "registry.partnership-status-changed"
PARTNERSHIP_AGREEMENT_RECORDED = "registry.partnership-agreement-recorded"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coordinates(_Event):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Contact(_Event):
    role: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=254)


class Evidence(_Event):
    reference: str = Field(min_length=1, max_length=500, description="document or article")
    note: str | None = Field(default=None, max_length=2000)


class OrganisationRegistered(_Event):
    organisation_id: str
    name: str
    kind: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    region: str | None = None
    aliases: list[str] = []
    coordinates: Coordinates | None = None
    parent_id: str | None = None


class OrganisationRenamed(_Event):
    organisation_id: str
    name: str
    previous_name: str
    reason: str | None = None


class OrganisationAliasAdded(_Event):
    organisation_id: str
    alias: str


class OrganisationCorrected(_Event):
    organisation_id: str
    changes: dict[str, Any] = Field(description="field -> corrected value")
    previous: dict[str, Any] = Field(description="field -> value before the correction")
    reason: str


class OrganisationContactsChanged(_Event):
    organisation_id: str
    contacts: list[Contact]


class PartnershipProposed(_Event):
    partnership_id: str
    organisations: list[str] = Field(min_length=2, max_length=2)
    kind: str
    programme: str | None = None
    phase: str | None = None
    fields: list[str] = []
    proposed_by: str
    evidence: Evidence | None = None


class PartnershipStatusChanged(_Event):
    partnership_id: str
    organisations: list[str] = Field(min_length=2, max_length=2)
    kind: str
    from_status: str
    to_status: Literal[
        "proposed", "under_discussion", "agreed", "signed", "suspended", "terminated"
    ]
    evidence: Evidence | None = None


class PartnershipAgreementRecorded(_Event):
    """One organisation of the partnership agreed, with its own key, that it becomes
    `to_status`; the partnership moves there once both have (a status-changed event)."""

    partnership_id: str
    organisations: list[str] = Field(min_length=2, max_length=2)
    kind: str
    organisation_id: str = Field(description="the organisation that agreed: one of the two")
    from_status: str
    to_status: Literal["agreed", "signed"]
    evidence: Evidence | None = None


SCHEMAS: dict[str, type[_Event]] = {
    ORGANISATION_REGISTERED: OrganisationRegistered,
    ORGANISATION_RENAMED: OrganisationRenamed,
    ORGANISATION_ALIAS_ADDED: OrganisationAliasAdded,
    ORGANISATION_CORRECTED: OrganisationCorrected,
    ORGANISATION_CONTACTS_CHANGED: OrganisationContactsChanged,
    PARTNERSHIP_PROPOSED: PartnershipProposed,
    PARTNERSHIP_STATUS_CHANGED: PartnershipStatusChanged,
    PARTNERSHIP_AGREEMENT_RECORDED: PartnershipAgreementRecorded,
}


def payload(event: _Event) -> dict[str, Any]:
    """The JSON data of an event, validated by its model."""
    return event.model_dump(mode="json")
