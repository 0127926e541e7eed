"""Organisations: pure rules. decide(state, command, now) -> events; evolve(state, event)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from services.registry import events as ev
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import NewEvent, RecordedEvent

ISO_COUNTRIES = frozenset(
    """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split()
)


class OrganisationKind(StrEnum):
    MUNICIPALITY = "municipality"
    REGION = "region"
    NATIONAL_BODY = "national_body"
    HOSPITAL = "hospital"
    FOUNDATION = "foundation"
    NGO = "ngo"
    ASSOCIATION = "association"
    COMPANY = "company"


def fold_name(name: str) -> str:
    """Case- and accent-insensitive form: 'Düsseldorf' and 'DUSSELDORF' fold alike."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


@dataclass(frozen=True, slots=True)
class Organisation:
    organisation_id: str
    version: int = 0
    name: str = ""
    kind: str = ""
    country: str = ""
    region: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def exists(self) -> bool:
        return self.version > 0


@dataclass(frozen=True, slots=True)
class RegisterOrganisation:
    organisation_id: str
    name: str
    kind: OrganisationKind
    country: str
    region: str | None = None
    aliases: tuple[str, ...] = ()


def register(
    state: Organisation,
    command: RegisterOrganisation,
    *,
    now: datetime,
) -> list[NewEvent]:
    """Raises Conflict if the id is taken, ValidationFailed on an unknown country."""
    if state.exists:
        raise Conflict(f"organisation {state.organisation_id} is already registered")
    if command.country not in ISO_COUNTRIES:
        raise ValidationFailed(f"{command.country!r} is not an ISO 3166-1 alpha-2 country code")
    return [
        NewEvent(
            event_type=ev.ORGANISATION_REGISTERED,
            occurred_at=now,
            data={
                "organisation_id": command.organisation_id,
                "name": command.name,
                "kind": command.kind.value,
                "country": command.country,
                "region": command.region,
                "aliases": list(command.aliases),
            },
        )
    ]


def evolve(state: Organisation, event: RecordedEvent) -> Organisation:
    data = event.data
    if event.event_type == ev.ORGANISATION_REGISTERED:
        return replace(
            state,
            version=event.stream_version,
            name=data["name"],
            kind=data["kind"],
            country=data["country"],
            region=data.get("region"),
            aliases=tuple(data.get("aliases", ())),
        )
    if event.event_type == ev.ORGANISATION_RENAMED:
        return replace(
            state,
            version=event.stream_version,
            name=data["name"],
            aliases=(*state.aliases, state.name),
        )
    if event.event_type == ev.ORGANISATION_ALIAS_ADDED:
        return replace(state, version=event.stream_version, aliases=(*state.aliases, data["alias"]))
    return replace(state, version=event.stream_version)


def require_existing(state: Organisation) -> Organisation:
    if not state.exists:
        raise NotFound(f"organisation {state.organisation_id} does not exist")
    return state
