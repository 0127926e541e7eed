"""Organisations: decide(state, command, now) -> events; evolve(state, event) -> state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.registry import events as ev
from services.registry.domain.names import fold_name
from shared.codec import Event
from shared.domain_checks import Record, invalid, require_exists
from shared.errors import Conflict, ValidationFailed
from shared.event_models import EventModel
from shared.events import NewEvent

__all__ = [
    "ISO_COUNTRIES",
    "MAX_ALIASES",
    "MAX_PARENT_CHAIN",
    "AddAlias",
    "ChangeContacts",
    "CorrectOrganisation",
    "Organisation",
    "OrganisationKind",
    "RegisterOrganisation",
    "RenameOrganisation",
    "add_alias",
    "change_contacts",
    "correct",
    "evolve_organisation",
    "register",
    "rename",
    "require_existing",
]

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

CORRECTABLE = ("kind", "country", "region", "coordinates", "parent_id")
# the most aliases an organisation is known by (a registration's body takes as many): its
# answer embeds them all, and a rename keeps the previous name as one
MAX_ALIASES = 50
# the most organisations a parent's chain holds (the parent, its parent, ...): how far a
# correction of the parent walks up looking for a cycle
MAX_PARENT_CHAIN = 32


class OrganisationKind(StrEnum):
    MUNICIPALITY = "municipality"
    REGION = "region"
    NATIONAL_BODY = "national_body"
    HOSPITAL = "hospital"
    FOUNDATION = "foundation"
    NGO = "ngo"
    ASSOCIATION = "association"
    COMPANY = "company"


@dataclass(frozen=True, slots=True)
class Organisation(Record):
    organisation_id: str
    version: int = 0
    name: str = ""
    kind: str = ""
    country: str = ""
    region: str | None = None
    aliases: tuple[str, ...] = ()
    coordinates: dict[str, float] | None = None
    parent_id: str | None = None
    contacts: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class RegisterOrganisation:
    organisation_id: str
    name: str
    kind: OrganisationKind
    country: str
    region: str | None = None
    aliases: tuple[str, ...] = ()
    coordinates: dict[str, float] | None = None
    parent_id: str | None = None
    contacts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class RenameOrganisation:
    name: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AddAlias:
    alias: str


@dataclass(frozen=True, slots=True)
class CorrectOrganisation:
    changes: dict[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class ChangeContacts:
    contacts: tuple[dict[str, Any], ...]


def _check_country(country: str) -> None:
    if country not in ISO_COUNTRIES:
        raise invalid(
            f"{country!r} is not an ISO 3166-1 alpha-2 country code",
            name="country",
            reason="unknown country code",
        )


def register(
    state: Organisation,
    command: RegisterOrganisation,
    *,
    now: datetime,
    parent: Organisation | None = None,
    namesake: Organisation | None = None,
) -> list[NewEvent]:
    """Raises Conflict if the id is taken or `namesake` (an organisation of the same country
    already known by one of these names) exists; ValidationFailed on bad references."""
    if state.exists:
        raise Conflict(f"organisation {state.organisation_id} is already registered")
    _check_country(command.country)
    if len(command.aliases) > MAX_ALIASES:
        raise invalid(
            f"an organisation is known by at most {MAX_ALIASES} aliases",
            name="aliases",
            reason=f"more than {MAX_ALIASES}",
        )
    if command.parent_id is not None:
        _check_parent(state.organisation_id, command.parent_id, parent)
    _check_namesake(namesake)
    registered = ev.OrganisationRegistered(
        organisation_id=command.organisation_id,
        name=command.name,
        kind=command.kind.value,
        country=command.country,
        region=command.region,
        aliases=list(command.aliases),
        coordinates=ev.Coordinates(**command.coordinates) if command.coordinates else None,
        parent_id=command.parent_id,
    )
    events = _at(now, registered)
    if command.contacts:
        events += _contacts_event(command.organisation_id, command.contacts, now)
    return events


def _check_namesake(namesake: Organisation | None) -> None:
    """Raises Conflict naming `namesake`, another organisation of the country already known by
    a name that looks like the one given (a registration's, a new name, an alias)."""
    if namesake is not None:
        raise Conflict(
            f"{namesake.name} ({namesake.organisation_id}) in {namesake.country} is already"
            ' registered under this name or alias; send "distinct": true if this is another'
            " organisation",
            extra={"existing_organisation_id": namesake.organisation_id},
        )


def _check_room(state: Organisation, doing: str) -> None:
    """Raises Conflict naming MAX_ALIASES when `state` is known by as many aliases (distinct as
    fold_name compares them): `doing` (adding one, a rename keeping the previous name as one)
    would add another."""
    known = len({fold_name(a) for a in state.aliases})
    if known >= MAX_ALIASES:
        raise Conflict(
            f"organisation {state.organisation_id} is already known by {known}"
            f" aliases, the most an organisation may have ({MAX_ALIASES}); {doing} would add"
            " another",
            extra={"max_aliases": MAX_ALIASES},
        )


def _check_parent(organisation_id: str, parent_id: str, parent: Organisation | None) -> None:
    if parent_id == organisation_id:
        raise invalid(
            "an organisation cannot be its own parent",
            name="parent_id",
            reason="the organisation itself",
        )
    if parent is None or not parent.exists:
        raise invalid(
            f"parent organisation {parent_id} does not exist",
            name="parent_id",
            reason="unknown organisation",
        )


def _at(now: datetime, payload: EventModel) -> list[NewEvent]:
    """What an organisation's decision records: one event, now."""
    return [ev.CODEC.new(payload, occurred_at=now)]


def _contacts_event(
    organisation_id: str, contacts: tuple[dict[str, Any], ...], now: datetime
) -> list[NewEvent]:
    """`contacts` sealed (shared/privacy.py: the handlers seal them before deciding)."""
    contacts_now = [ev.SealedContact(**c) for c in contacts]
    return _at(
        now,
        ev.OrganisationContactsChanged(organisation_id=organisation_id, contacts=contacts_now),
    )


def rename(
    state: Organisation,
    command: RenameOrganisation,
    *,
    now: datetime,
    namesake: Organisation | None = None,
) -> list[NewEvent]:
    """The previous name stays findable as an alias. Raises Conflict if `namesake` (another
    organisation of the country known by a look-alike of the new name) exists."""
    require_existing(state)
    if command.name == state.name:
        return []
    if len(renamed_aliases(state.aliases, state.name, command.name)) > len(state.aliases):
        _check_room(state, "a rename, which keeps the previous name as an alias,")
    _check_namesake(namesake)
    renamed = ev.OrganisationRenamed(
        organisation_id=state.organisation_id,
        name=command.name,
        previous_name=state.name,
        reason=command.reason,
    )
    return _at(now, renamed)


def add_alias(
    state: Organisation,
    command: AddAlias,
    *,
    now: datetime,
    namesake: Organisation | None = None,
) -> list[NewEvent]:
    """Raises Conflict if `namesake` (another organisation of the country known by a look-alike
    of the alias) exists."""
    require_existing(state)
    if fold_name(command.alias) in {fold_name(n) for n in state.names}:
        return []  # already known by that name: nothing new happened
    _check_room(state, "this alias")
    _check_namesake(namesake)
    return _at(
        now, ev.OrganisationAliasAdded(organisation_id=state.organisation_id, alias=command.alias)
    )


def correct(
    state: Organisation,
    command: CorrectOrganisation,
    *,
    now: datetime,
    parent: Organisation | None = None,
    above_parent: Sequence[str] = (),
    namesake: Organisation | None = None,
) -> list[NewEvent]:
    """`parent`: the new parent's state, `above_parent` the organisations above it (its
    parent, that one's parent, ...: the handler reads up to MAX_PARENT_CHAIN of them); a new
    parent among which the organisation is (a cycle), or whose chain is longer than
    MAX_PARENT_CHAIN, is refused naming parent_id. `namesake`: another organisation of the new
    country known by a look-alike of one of the organisation's names (Conflict, as a
    registration)."""
    require_existing(state)
    unknown = sorted(set(command.changes) - set(CORRECTABLE))
    if unknown:
        raise ValidationFailed(
            f"these fields cannot be corrected: {', '.join(unknown)}"
            f" (only {', '.join(CORRECTABLE)})",
            extra={"invalid_params": [{"name": f, "reason": "not correctable"} for f in unknown]},
        )
    if "country" in command.changes:
        _check_country(str(command.changes["country"]))
    if command.changes.get("parent_id") is not None:
        parent_id = str(command.changes["parent_id"])
        _check_parent(state.organisation_id, parent_id, parent)
        if parent_id != state.parent_id:
            _check_no_cycle(state.organisation_id, [parent_id, *above_parent])
    if "kind" in command.changes and command.changes["kind"] not in set(OrganisationKind):
        raise invalid(
            f"{command.changes['kind']!r} is not an organisation kind",
            name="kind",
            reason="unknown organisation kind",
        )
    current = {k: getattr(state, k) for k in CORRECTABLE}
    changes = {k: v for k, v in command.changes.items() if current[k] != v}
    if not changes:
        return []
    if "country" in changes:
        _check_namesake(namesake)
    corrected = ev.OrganisationCorrected(
        organisation_id=state.organisation_id,
        changes=changes,
        previous={k: current[k] for k in changes},
        reason=command.reason,
    )
    return _at(now, corrected)


def _check_no_cycle(organisation_id: str, chain: Sequence[str]) -> None:
    """`chain`: the new parent, then the organisations above it. Raises ValidationFailed
    naming parent_id if the organisation is among them (it would be its own ancestor) or the
    chain holds more than MAX_PARENT_CHAIN organisations."""
    if organisation_id in chain:
        cycle = [organisation_id, *chain[: chain.index(organisation_id) + 1]]
        raise invalid(
            f"{chain[0]} cannot be the parent of {organisation_id}: it is under it, and the"
            f" parents would go round in a cycle ({' -> '.join(cycle)})",
            name="parent_id",
            reason="a cycle of parents",
        )
    if len(chain) > MAX_PARENT_CHAIN:
        raise invalid(
            f"{chain[0]} has more than {MAX_PARENT_CHAIN - 1} organisations above it: a parent's"
            f" chain holds at most {MAX_PARENT_CHAIN}",
            name="parent_id",
            reason=f"a chain of parents longer than {MAX_PARENT_CHAIN}",
        )


def change_contacts(
    state: Organisation,
    command: ChangeContacts,
    *,
    now: datetime,
) -> list[NewEvent]:
    """`command.contacts` sealed; the very contacts the state holds (the handler passes them
    when the people did not change) change nothing."""
    require_existing(state)
    if tuple(command.contacts) == state.contacts:
        return []
    return _contacts_event(state.organisation_id, command.contacts, now)


def renamed_aliases(aliases: Sequence[str], previous_name: str, name: str) -> tuple[str, ...]:
    """The aliases after a rename from `previous_name` to `name`: those that fold (fold_name,
    as registration's dedupe compares) to the new name are dropped (it is the name now), and the
    previous name is kept as an alias unless it folds to the new name or to an alias kept.

    A history whose aliases never repeated a name or each other (what registration and
    add_alias allow) folds to what it did before this dedupe (the previous name appended); one
    that did (renames back and forth before it) folds to its aliases once each, the name not
    among them."""
    kept: tuple[str, ...] = ()
    for alias in aliases:
        kept = with_alias(kept, alias, name)
    return with_alias(kept, previous_name, name)


def with_alias(aliases: Sequence[str], alias: str, name: str) -> tuple[str, ...]:
    """`aliases` and `alias` after them, unless it folds to `name` or to one of them."""
    known = {fold_name(name), *(fold_name(a) for a in aliases)}
    return tuple(aliases) if fold_name(alias) in known else (*aliases, alias)


def evolve_organisation(state: Organisation, event: Event[Any]) -> Organisation:
    state = replace(state, version=event.stream_version)
    match event.payload:
        case ev.OrganisationRegistered() as e:
            return replace(
                state,
                name=e.name,
                kind=e.kind,
                country=e.country,
                region=e.region,
                aliases=tuple(e.aliases),
                coordinates=e.coordinates.model_dump() if e.coordinates else None,
                parent_id=e.parent_id,
            )
        case ev.OrganisationRenamed() as e:
            aliases = renamed_aliases(state.aliases, e.previous_name, e.name)
            return replace(state, name=e.name, aliases=aliases)
        case ev.OrganisationAliasAdded() as e:
            return replace(state, aliases=with_alias(state.aliases, e.alias, state.name))
        case ev.OrganisationCorrected() as e:
            return replace(state, **e.changes)
        case ev.OrganisationContactsChanged() | ev.OrganisationContactsChangedV1() as e:
            # as recorded: sealed, or in clear in a log older than sealing
            contacts = (c.model_dump(mode="json", exclude_unset=True) for c in e.contacts)
            return replace(state, contacts=tuple(contacts))
    return state


def require_existing(state: Organisation) -> Organisation:
    return require_exists(state, f"organisation {state.organisation_id}")
