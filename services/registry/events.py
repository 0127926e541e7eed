"""Facts the registry records, with the JSON Schema of each (see schemas/ and test_contracts).

Names are stable; a changed shape gets a new schema version and an upcaster.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from shared.codec import EventCodec
from shared.event_models import MAX_ID as MAX_ID
from shared.event_models import MAX_LABEL as MAX_LABEL
from shared.event_models import MAX_NAME as MAX_NAME
from shared.event_models import Coordinates as Coordinates
from shared.event_models import EventModel, Id, Label, Name, by_type, sealed_field
from shared.sealed import SUBJECT_ID

STREAM_ORGANISATION = "organisation"
STREAM_PARTNERSHIP = "partnership"
STREAM_API_KEY = "api_key"

ORGANISATION_REGISTERED = "registry.organisation-registered"
ORGANISATION_RENAMED = "registry.organisation-renamed"
ORGANISATION_ALIAS_ADDED = "registry.organisation-alias-added"
ORGANISATION_CORRECTED = "registry.organisation-corrected"
ORGANISATION_CONTACTS_CHANGED = "registry.organisation-contacts-changed"
PARTNERSHIP_PROPOSED = "registry.partnership-proposed"
PARTNERSHIP_STATUS_CHANGED = "registry.partnership-status-changed"
PARTNERSHIP_AGREEMENT_RECORDED = "registry.partnership-agreement-recorded"
API_KEY_ISSUED = "registry.api-key-issued"
API_KEY_ROTATED = "registry.api-key-rotated"
API_KEY_REVOKED = "registry.api-key-revoked"


# Bounds a consumer enforces through the published schemas; never below what the API accepts
# (services/registry/requests.py: slugs 100, names 200, reasons 500, evidence 500/2000); ids,
# names and labels are bounded alike in every service (shared/event_models.py).
MAX_REASON = 500
MAX_ALIASES = 50
MAX_CONTACTS = 20
MAX_FIELDS = 20

Reason = Annotated[str, Field(max_length=MAX_REASON)]


class Contact(EventModel):
    # a contact in clear: what version 1 of a contacts change held (still in older logs)
    role: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=254)


class SealedContact(EventModel):
    """A contact as the log holds it (shared/privacy.py): the role in clear, the name and
    email encrypted under the person's own key, which erasure destroys."""

    role: str = Field(min_length=1, max_length=100, description="a function, kept in clear")
    subject_id: str = Field(pattern=SUBJECT_ID, max_length=100)
    personal: list[Literal["name", "email"]] = Field(
        min_length=1, max_length=2, description="the fields sealed"
    )
    sealed: str = sealed_field()


class Evidence(EventModel):
    reference: str = Field(min_length=1, max_length=500, description="document or article")
    note: str | None = Field(default=None, max_length=2000)


class OrganisationRegistered(EventModel):
    EVENT_TYPE: ClassVar[str] = ORGANISATION_REGISTERED

    organisation_id: Id
    name: Name
    kind: Label
    country: str = Field(pattern=r"^[A-Z]{2}$")
    region: Name | None = None
    aliases: list[Name] = Field(default=[], max_length=MAX_ALIASES)
    coordinates: Coordinates | None = None
    parent_id: Id | None = None


class OrganisationRenamed(EventModel):
    EVENT_TYPE: ClassVar[str] = ORGANISATION_RENAMED

    organisation_id: Id
    name: Name
    previous_name: Name
    reason: Reason | None = None


class OrganisationAliasAdded(EventModel):
    EVENT_TYPE: ClassVar[str] = ORGANISATION_ALIAS_ADDED

    organisation_id: Id
    alias: Name


class OrganisationCorrected(EventModel):
    EVENT_TYPE: ClassVar[str] = ORGANISATION_CORRECTED

    organisation_id: Id
    changes: dict[str, Any] = Field(description="field -> corrected value")
    previous: dict[str, Any] = Field(description="field -> value before the correction")
    reason: Reason


class OrganisationContactsChanged(EventModel):
    """The organisation's contacts now (replacing the previous ones), each sealed."""

    EVENT_TYPE: ClassVar[str] = ORGANISATION_CONTACTS_CHANGED
    SCHEMA_VERSION: ClassVar[int] = 2

    organisation_id: Id
    contacts: list[SealedContact] = Field(max_length=MAX_CONTACTS)


class OrganisationContactsChangedV1(EventModel):
    # version 1: the contacts in clear (no docstring: its published schema stays as it was)
    EVENT_TYPE: ClassVar[str] = ORGANISATION_CONTACTS_CHANGED
    SCHEMA_VERSION: ClassVar[int] = 1

    organisation_id: Id
    contacts: list[Contact] = Field(max_length=MAX_CONTACTS)


class _PartnershipEvent(EventModel):
    """What every event of a partnership names first: it, its two organisations, its kind."""

    partnership_id: Id
    organisations: list[Id] = Field(min_length=2, max_length=2)
    kind: Label


class PartnershipProposed(_PartnershipEvent):
    EVENT_TYPE: ClassVar[str] = PARTNERSHIP_PROPOSED

    programme: Name | None = None
    phase: Label | None = None
    fields: list[Label] = Field(default=[], max_length=MAX_FIELDS)
    proposed_by: Id
    evidence: Evidence | None = None


class PartnershipStatusChanged(_PartnershipEvent):
    EVENT_TYPE: ClassVar[str] = PARTNERSHIP_STATUS_CHANGED

    from_status: Label
    to_status: Literal[
        "proposed", "under_discussion", "agreed", "signed", "suspended", "terminated"
    ]
    evidence: Evidence | None = None


class PartnershipAgreementRecorded(_PartnershipEvent):
    """One organisation of the partnership agreed, with its own key, that it becomes
    `to_status`; the partnership moves there once both have (a status-changed event)."""

    EVENT_TYPE: ClassVar[str] = PARTNERSHIP_AGREEMENT_RECORDED

    organisation_id: Id = Field(description="the organisation that agreed: one of the two")
    from_status: Label
    to_status: Literal["agreed", "signed"]
    evidence: Evidence | None = None


KeyId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]
RoleName = Annotated[str, Field(min_length=1, max_length=50)]


class KeyActor(EventModel):
    """Who made a key change: the key that asked, and its organisation."""

    key_id: Annotated[str, Field(min_length=1, max_length=64)]
    organisation: Id


class _KeySecret(EventModel):
    """What an issued or rotated key holds: its roles, label, expiry and secret's digest."""

    key_id: KeyId
    organisation_id: Id
    roles: list[RoleName] = Field(min_length=1, max_length=10)
    label: Label
    expires_at: AwareDatetime | None = Field(description="when it stops working (null: never)")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the secret")
    by: KeyActor


class ApiKeyIssued(_KeySecret):
    """A new API key of `organisation_id`. `secret_sha256` is what the other services check
    the key's secret against (never the secret, which only its holder saw)."""

    EVENT_TYPE: ClassVar[str] = API_KEY_ISSUED


class ApiKeyRotated(_KeySecret):
    """The key's secret replaced (the previous one refused from now on) and its expiry
    renewed; roles and label as they are, repeated so the event stands on its own."""

    EVENT_TYPE: ClassVar[str] = API_KEY_ROTATED

    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the new secret")


class ApiKeyRevoked(EventModel):
    """The key stops working for good."""

    EVENT_TYPE: ClassVar[str] = API_KEY_REVOKED

    key_id: KeyId
    organisation_id: Id
    reason: Reason | None = None
    by: KeyActor


# the current model of each event type (its published schema: schemas/, `twinaid contracts`)
SCHEMAS: dict[str, type[EventModel]] = by_type(
    OrganisationRegistered,
    OrganisationRenamed,
    OrganisationAliasAdded,
    OrganisationCorrected,
    OrganisationContactsChanged,
    PartnershipProposed,
    PartnershipStatusChanged,
    PartnershipAgreementRecorded,
    ApiKeyIssued,
    ApiKeyRotated,
    ApiKeyRevoked,
)

# Older schema versions of event types still in logs: {(type, version): model}
PREVIOUS: dict[tuple[str, int], type[EventModel]] = {
    (ORGANISATION_CONTACTS_CHANGED, 1): OrganisationContactsChangedV1,
}


# A contacts change of version 1 holds its contacts in clear: sealing them takes each person's
# key from the database (the privacy migration seals them in place, as version 2), which no
# pure upcaster can do, so until then it decodes as its own model (readers take both).
CODEC = EventCodec(SCHEMAS.values(), previous=PREVIOUS)
