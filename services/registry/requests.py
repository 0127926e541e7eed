"""Request bodies and parameters of the registry API: strict, bounded, unknown fields refused."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.registry import domain
from shared import instants, pagination

Name = Annotated[str, Field(min_length=1, max_length=200)]


def _visible(name: str) -> str:
    hidden = domain.hidden_characters(name)
    if hidden:
        raise ValueError(
            f"holds characters that do not show as themselves: {', '.join(hidden)};"
            " an organisation's names and aliases must read as they look"
        )
    return name


# an organisation's name or alias: no invisible, control or bidirectional characters
OrgName = Annotated[Name, AfterValidator(_visible)]
Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
OrgId = Annotated[str, Path(min_length=1, max_length=100)]
PartnershipId = Annotated[str, Path(min_length=1, max_length=100)]
Limit = Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]
IfMatch = Annotated[int | None, Header(description="the version you last read")]
AsOf = Annotated[instants.QueryInstant | None, Query(description="state as of this instant")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CoordinatesIn(_In):
    """Where an organisation is (its town's centre, its premises): WGS 84 degrees, JSON numbers
    only (no strings, booleans, NaN or infinities)."""

    lat: Annotated[
        float, Field(ge=-90, le=90, strict=True, allow_inf_nan=False, description="latitude")
    ]
    lon: Annotated[
        float, Field(ge=-180, le=180, strict=True, allow_inf_nan=False, description="longitude")
    ]


class ContactIn(_In):
    role: Annotated[str, Field(min_length=1, max_length=100)]
    name: Name
    email: Annotated[str | None, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] = (
        None
    )


class OrganisationIn(_In):
    organisation_id: Slug | None = None
    name: OrgName
    kind: domain.OrganisationKind
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    region: Annotated[str | None, Field(max_length=200)] = None
    aliases: Annotated[list[OrgName], Field(max_length=50)] = []
    coordinates: CoordinatesIn | None = None
    parent_id: Slug | None = None
    contacts: Annotated[list[ContactIn], Field(max_length=20)] = []
    distinct: bool = Field(default=False, description="register despite a namesake")


class RenameIn(_In):
    name: OrgName
    reason: Annotated[str | None, Field(max_length=500)] = None


class AliasIn(_In):
    alias: OrgName


class CorrectionIn(_In):
    kind: domain.OrganisationKind | None = None
    country: Annotated[str | None, Field(pattern=r"^[A-Z]{2}$")] = None
    region: Annotated[str | None, Field(max_length=200)] = None
    coordinates: CoordinatesIn | None = None
    parent_id: Slug | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ContactsIn(_In):
    contacts: Annotated[list[ContactIn], Field(max_length=20)]


class EvidenceIn(_In):
    reference: Annotated[str, Field(min_length=1, max_length=500)]
    note: Annotated[str | None, Field(max_length=2000)] = None


class PartnershipIn(_In):
    partnership_id: Slug | None = None
    organisations: Annotated[list[Slug], Field(min_length=2, max_length=2)]
    kind: domain.PartnershipKind
    programme: Annotated[str | None, Field(max_length=200)] = None
    phase: Annotated[str | None, Field(max_length=100)] = None
    fields: Annotated[list[domain.CooperationField], Field(max_length=20)] = []
    occurred_at: instants.PastInstant | None = None
    evidence: EvidenceIn | None = None


class TransitionIn(_In):
    to: domain.PartnershipStatus
    occurred_at: instants.PastInstant | None = None
    evidence: EvidenceIn | None = None
