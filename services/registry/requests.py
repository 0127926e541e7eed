"""Request bodies and parameters of the registry API: strict, bounded, unknown fields refused."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import AfterValidator, Field, ValidationInfo

from services.registry import domain
from shared import instants
from shared import key_policy as policy
from shared.auth import Role
from shared.deps import IfMatch as IfMatch  # the routes import it from here
from shared.free_text import PlainText
from shared.route_params import AsOf as AsOf  # the routes import it from here
from shared.route_params import Body, example
from shared.route_params import CoordinatesIn as CoordinatesIn

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


class ContactIn(Body):
    role: Annotated[str, Field(min_length=1, max_length=100), PlainText]
    name: Annotated[Name, PlainText]
    email: Annotated[str | None, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] = (
        None
    )


def _aliases_once(aliases: list[str], info: ValidationInfo) -> list[str]:
    """The aliases, each once and none the organisation's name: folded as the registry compares
    an added alias with the names it knows (domain.fold_name), a repeat adds nothing and is
    left out (the first spelling kept), as adding an alias it is already known by adds nothing.
    Registering with aliases stores what registering and then adding each alias would."""
    known = {domain.fold_name(info.data["name"])} if "name" in info.data else set()
    once: list[str] = []
    for alias in aliases:
        folded = domain.fold_name(alias)
        if folded not in known:
            known.add(folded)
            once.append(alias)
    return once


class OrganisationIn(Body):
    model_config = example(
        {
            "organisation_id": "kharkiv",
            "name": "Kharkiv",
            "kind": "municipality",
            "country": "UA",
            "region": "Kharkiv Oblast",
            "aliases": ["Charkiw", "Kharkov"],
            "coordinates": {"lat": 49.9935, "lon": 36.2304},
        }
    )

    organisation_id: Slug | None = None
    name: OrgName
    kind: domain.OrganisationKind
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    region: Annotated[str | None, Field(max_length=200), PlainText] = None
    aliases: Annotated[
        list[OrgName],
        Field(
            max_length=domain.MAX_ALIASES,
            description="other names it is known by; one that repeats the name or an earlier"
            " alias (case, accents and blanks aside) adds nothing and is left out",
        ),
        AfterValidator(_aliases_once),
    ] = []
    coordinates: CoordinatesIn | None = None
    parent_id: Slug | None = None
    contacts: Annotated[list[ContactIn], Field(max_length=20)] = []
    distinct: bool = Field(default=False, description="register despite a namesake")


class RenameIn(Body):
    model_config = example({"name": "Kyiv", "reason": "official transliteration since 1995"})

    name: OrgName
    reason: Annotated[str | None, Field(max_length=500), PlainText] = None
    distinct: bool = Field(
        default=False,
        description="rename despite a namesake (another organisation of the country known by"
        " a name that looks like this one)",
    )


class AliasIn(Body):
    model_config = example({"alias": "Charkiw"})

    alias: OrgName
    distinct: bool = Field(
        default=False,
        description="add the alias despite a namesake (another organisation of the country"
        " known by a name that looks like it)",
    )


class CorrectionIn(Body):
    model_config = example(
        {
            "region": "Kyiv Oblast",
            "coordinates": {"lat": 50.5436, "lon": 30.2131},
            "reason": "Bucha is in Kyiv Oblast",
        }
    )

    kind: domain.OrganisationKind | None = None
    country: Annotated[str | None, Field(pattern=r"^[A-Z]{2}$")] = None
    region: Annotated[str | None, Field(max_length=200), PlainText] = None
    coordinates: CoordinatesIn | None = None
    parent_id: Slug | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500), PlainText]
    distinct: bool = Field(
        default=False,
        description="move to another country despite a namesake there (another organisation"
        " of that country known by a name that looks like one of this one's)",
    )


class ContactsIn(Body):
    model_config = example(
        {
            "contacts": [
                {
                    "role": "international relations",
                    "name": "Marc Leroy",
                    "email": "relations@lille.example",
                }
            ]
        }
    )

    contacts: Annotated[list[ContactIn], Field(max_length=20)]


class EvidenceIn(Body):
    reference: Annotated[str, Field(min_length=1, max_length=500), PlainText]
    note: Annotated[str | None, Field(max_length=2000), PlainText] = None


class PartnershipIn(Body):
    model_config = example(
        {
            "partnership_id": "lille-kharkiv-twinning",
            "organisations": ["lille", "kharkiv"],
            "kind": "twinning",
            "fields": ["humanitarian_aid"],
            "occurred_at": "1978-06-01T00:00:00Z",
        }
    )

    partnership_id: Slug | None = None
    organisations: Annotated[list[Slug], Field(min_length=2, max_length=2)]
    kind: domain.PartnershipKind
    programme: Annotated[str | None, Field(max_length=200), PlainText] = None
    phase: Annotated[str | None, Field(max_length=100), PlainText] = None
    fields: Annotated[list[domain.CooperationField], Field(max_length=20)] = []
    occurred_at: instants.PastInstant | None = None
    evidence: EvidenceIn | None = None


class TransitionIn(Body):
    model_config = example(
        {
            "to": "signed",
            "occurred_at": "2022-05-19T10:00:00Z",
            "evidence": {"reference": "Twinning Pact, Bucha and Bergamo"},
        }
    )

    to: domain.PartnershipStatus
    occurred_at: instants.PastInstant | None = None
    evidence: EvidenceIn | None = None


# API keys (api/api_keys.py)
# the most key uses one report may carry (a worker sends more in several)
MAX_USES_REPORTED = 1000

KeyOwnerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the organisation whose keys these are",
    ),
]
KeyId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="the key's id: the part after `twa_` of the token",
    ),
]
Label = Annotated[
    str, Field(min_length=1, max_length=100, description="what the key is for"), PlainText
]
Expiry = Annotated[
    instants.PlanInstant | None,
    Field(
        description=f"when the key stops working; default {policy.DEFAULT_LIFETIME.days} days"
        f" ahead, at most {policy.MAX_LIFETIME.days} days ahead",
    ),
]


class IssueApiKeyIn(Body):
    roles: list[Role] = Field(
        min_length=1,
        max_length=5,
        description="an org_admin grants member, logistics or org_admin only",
    )
    label: Label
    expires_at: Expiry = None


class RotateApiKeyIn(Body):
    expires_at: Expiry = None


class RevokeApiKeyIn(Body):
    reason: Annotated[str | None, Field(min_length=1, max_length=500), PlainText] = None


class ApiKeyUse(Body):
    key_id: str = Field(pattern=r"^[0-9a-f]+$", min_length=1, max_length=64)
    # bounded as every instant the API takes (shared/instants.py): one ahead of now counts as now
    last_used_at: instants.PlanInstant = Field(description="its last use at the reporting service")


class ReportApiKeyUsesIn(Body):
    # only the services that hold copies of the keys report (a service key names no service
    # of its own: any name would let it grow api_key_uses without bound)
    service: Literal["pledges", "shipments"] = Field(
        description="the reporting service: where the keys were used"
    )
    uses: list[ApiKeyUse] = Field(max_length=MAX_USES_REPORTED)
