"""The registry's pure rules, without a database: decide and fold."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from services.registry import domain
from services.registry import events as ev
from shared import instants
from shared.codec import Event
from shared.errors import Conflict, Forbidden, ValidationFailed
from shared.events import Metadata, NewEvent, RecordedEvent

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
S = domain.PartnershipStatus
# an administrator's record of both organisations' agreement (needed for agreed and signed)
BOTH_AGREED = ev.Evidence(reference="council resolutions of both organisations")
T = TypeVar("T")


def recorded(events: Sequence[NewEvent], *, after_version: int = 0) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            event_id=uuid.uuid4(),
            stream_type="test",
            stream_id="test-1",
            stream_version=after_version + i,
            event_type=e.event_type,
            schema_version=e.schema_version,
            occurred_at=e.occurred_at or NOW,
            recorded_at=NOW,
            data=e.data,
            metadata=Metadata(),
        )
        for i, e in enumerate(events, start=1)
    ]


def apply(state: T, events: Sequence[NewEvent], evolve: Callable[[T, Event[Any]], T]) -> T:
    version: int = getattr(state, "version")  # noqa: B009
    for event in ev.CODEC.decode_all(recorded(events, after_version=version)):
        state = evolve(state, event)
    return state


def organisation(organisation_id: str, **fields: Any) -> domain.Organisation:
    command = domain.RegisterOrganisation(
        organisation_id=organisation_id,
        name=fields.pop("name", organisation_id.title()),
        kind=fields.pop("kind", domain.OrganisationKind.MUNICIPALITY),
        country=fields.pop("country", "FR"),
        **fields,
    )
    state = domain.Organisation(organisation_id)
    return apply(state, domain.register(state, command, now=NOW), domain.evolve_organisation)


LILLE = organisation("lille", region="Hauts-de-France")
KHARKIV = organisation("kharkiv", country="UA", aliases=("Charkiw", "Kharkov"))
LEEDS = organisation("leeds", country="GB")


def partnership_in(status: domain.PartnershipStatus) -> domain.Partnership:
    """Lille-Kharkiv twinning, proposed in 1978 and then put straight into `status`."""
    return domain.Partnership(
        "lille-kharkiv",
        version=2,
        organisations=("lille", "kharkiv"),
        kind="twinning",
        status=status,
        last_changed_at=datetime(1978, 1, 1, tzinfo=UTC),
    )


def propose(**overrides: Any) -> list[NewEvent]:
    acting_for = overrides.pop("acting_for", None)
    parties = overrides.pop("parties", (LILLE, KHARKIV))
    values: dict[str, Any] = {
        "partnership_id": "lille-kharkiv",
        "organisations": ("lille", "kharkiv"),
        "kind": domain.PartnershipKind.TWINNING,
        "occurred_at": datetime(1978, 1, 1, tzinfo=UTC),
        **overrides,
    }
    return domain.propose(
        domain.Partnership("lille-kharkiv"),
        domain.ProposePartnership(**values),
        now=NOW,
        acting_for=acting_for,
        parties=parties,
    )


ALLOWED = [(src, dst) for src, targets in domain.TRANSITIONS.items() for dst in targets]
REFUSED = [(src, dst) for src in S for dst in S if dst not in domain.TRANSITIONS[src]]


def test_the_transition_table_covers_every_status() -> None:
    assert set(domain.TRANSITIONS) == set(S)
    assert domain.TRANSITIONS[S.TERMINATED] == ()


@pytest.mark.parametrize(("src", "dst"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_an_allowed_transition_records_one_status_change_from_and_to(
    src: domain.PartnershipStatus, dst: domain.PartnershipStatus
) -> None:
    state = partnership_in(src)
    when = datetime(1979, 6, 1, tzinfo=UTC)
    events = domain.change_status(
        state,
        domain.ChangeStatus(to=dst, occurred_at=when, evidence=BOTH_AGREED),
        now=NOW,
        acting_for=None,
    )
    assert [e.event_type for e in events] == [ev.PARTNERSHIP_STATUS_CHANGED]
    assert events[0].data["from_status"] == src.value
    assert events[0].data["to_status"] == dst.value
    assert events[0].occurred_at == when
    after = apply(state, events, domain.evolve_partnership)
    assert after.status is dst
    assert after.last_changed_at == when
    assert after.history[-1] == domain.StatusChange(dst.value, when, None, BOTH_AGREED)


@pytest.mark.parametrize(("src", "dst"), REFUSED, ids=[f"{a}->{b}" for a, b in REFUSED])
def test_a_refused_transition_is_a_conflict_listing_the_allowed_ones(
    src: domain.PartnershipStatus, dst: domain.PartnershipStatus
) -> None:
    with pytest.raises(Conflict) as raised:
        domain.change_status(
            partnership_in(src),
            domain.ChangeStatus(to=dst, occurred_at=datetime(1979, 6, 1, tzinfo=UTC)),
            now=NOW,
            acting_for=None,
        )
    assert raised.value.extra["allowed_transitions"] == [s.value for s in domain.TRANSITIONS[src]]
    assert raised.value.extra["current_status"] == src.value


def test_every_status_pair_is_either_allowed_or_refused() -> None:
    assert len(ALLOWED) + len(REFUSED) == len(S) ** 2
    assert (S.PROPOSED, S.PROPOSED) in REFUSED, "staying in place is not a change"


def test_a_proposal_records_the_pair_kind_programme_and_its_date_in_the_past() -> None:
    events = propose(
        programme="Bridges of Trust",
        phase="2",
        fields=(domain.CooperationField.HEALTH_AND_REHABILITATION,),
        evidence=ev.Evidence(reference="https://example.org/lille-kharkiv", note="1978 charter"),
    )
    assert [e.event_type for e in events] == [ev.PARTNERSHIP_PROPOSED]
    assert events[0].occurred_at == datetime(1978, 1, 1, tzinfo=UTC)
    state = apply(domain.Partnership("lille-kharkiv"), events, domain.evolve_partnership)
    assert state.organisations == ("lille", "kharkiv")
    assert (state.kind, state.programme, state.phase) == ("twinning", "Bridges of Trust", "2")
    assert state.fields == ("health_and_rehabilitation",)
    assert state.status is S.PROPOSED
    assert events[0].data["proposed_by"] == "registry"
    assert events[0].data["evidence"]["reference"] == "https://example.org/lille-kharkiv"


def test_a_partnership_of_an_organisation_with_itself_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="two different"):
        propose(organisations=("lille", "lille"), parties=(LILLE, LILLE))


def test_a_partnership_with_an_unknown_organisation_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="atlantis does not exist"):
        propose(
            organisations=("lille", "atlantis"), parties=(LILLE, domain.Organisation("atlantis"))
        )


def test_a_proposal_dated_in_the_future_beyond_the_clock_skew_is_refused() -> None:
    assert len(propose(occurred_at=NOW + instants.clock_skew())) == 1
    with pytest.raises(ValidationFailed, match="future"):
        propose(occurred_at=NOW + instants.clock_skew() + timedelta(seconds=1))


def test_a_proposal_dated_exactly_now_is_accepted() -> None:
    assert len(propose(occurred_at=NOW)) == 1


def test_a_member_may_propose_for_its_own_organisation_on_either_side() -> None:
    assert propose(acting_for="lille")[0].data["proposed_by"] == "lille"
    assert propose(acting_for="kharkiv")[0].data["proposed_by"] == "kharkiv"


def test_a_member_proposing_for_two_other_organisations_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        propose(acting_for="leeds")


def test_proposing_again_under_a_taken_id_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        domain.propose(
            partnership_in(S.PROPOSED),
            domain.ProposePartnership(
                partnership_id="lille-kharkiv",
                organisations=("lille", "kharkiv"),
                kind=domain.PartnershipKind.TWINNING,
                occurred_at=NOW,
            ),
            now=NOW,
            acting_for=None,
            parties=(LILLE, KHARKIV),
        )


def test_a_member_of_another_organisation_may_not_change_the_status() -> None:
    with pytest.raises(Forbidden):
        domain.change_status(
            partnership_in(S.PROPOSED),
            domain.ChangeStatus(to=S.UNDER_DISCUSSION, occurred_at=NOW),
            now=NOW,
            acting_for="leeds",
        )


def test_a_member_of_a_party_may_change_the_status() -> None:
    events = domain.change_status(
        partnership_in(S.PROPOSED),
        domain.ChangeStatus(to=S.UNDER_DISCUSSION, occurred_at=NOW),
        now=NOW,
        acting_for="kharkiv",
    )
    assert events[0].data["to_status"] == "under_discussion"


def test_a_status_change_dated_before_the_last_change_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="before the previous change"):
        domain.change_status(
            partnership_in(S.PROPOSED),
            domain.ChangeStatus(to=S.SIGNED, occurred_at=datetime(1977, 12, 31, tzinfo=UTC)),
            now=NOW,
            acting_for=None,
        )


def test_a_status_change_dated_in_the_future_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="future"):
        domain.change_status(
            partnership_in(S.PROPOSED),
            domain.ChangeStatus(to=S.SIGNED, occurred_at=NOW + timedelta(days=1)),
            now=NOW,
            acting_for=None,
        )


@pytest.mark.parametrize("src", [S.PROPOSED, S.UNDER_DISCUSSION, S.AGREED, S.SUSPENDED])
def test_signing_while_another_twin_is_active_is_a_conflict_naming_it(
    src: domain.PartnershipStatus,
) -> None:
    with pytest.raises(Conflict) as raised:
        domain.change_status(
            partnership_in(src),
            domain.ChangeStatus(to=S.SIGNED, occurred_at=NOW),
            now=NOW,
            acting_for=None,
            active_twin="lille-kharkiv-1978",
        )
    assert raised.value.extra["active_partnership_id"] == "lille-kharkiv-1978"


def test_an_active_twin_does_not_stop_other_changes() -> None:
    events = domain.change_status(
        partnership_in(S.PROPOSED),
        domain.ChangeStatus(to=S.TERMINATED, occurred_at=NOW),
        now=NOW,
        acting_for=None,
        active_twin="lille-kharkiv-1978",
    )
    assert events[0].data["to_status"] == "terminated"


def test_a_full_lifecycle_folds_into_its_dated_history() -> None:
    days = [datetime(1978, 1, d, tzinfo=UTC) for d in range(1, 8)]
    state = apply(
        domain.Partnership("lille-kharkiv"),
        propose(occurred_at=days[0]),
        domain.evolve_partnership,
    )
    path = [S.UNDER_DISCUSSION, S.AGREED, S.SIGNED, S.SUSPENDED, S.SIGNED, S.TERMINATED]
    for to, when in zip(path, days[1:], strict=True):
        events = domain.change_status(
            state,
            domain.ChangeStatus(to=to, occurred_at=when, evidence=BOTH_AGREED),
            now=NOW,
            acting_for=None,
        )
        state = apply(state, events, domain.evolve_partnership)
    assert state.status is S.TERMINATED
    assert state.version == 7
    assert [h.status for h in state.history] == ["proposed", *(s.value for s in path)]
    assert [h.occurred_at for h in state.history] == days
    assert [h.evidence for h in state.history] == [None, *(BOTH_AGREED for _ in path)]
    assert (state.proposed_at, state.signed_at, state.last_changed_at) == (
        days[0],
        days[3],  # the first signing: the resumption keeps it
        days[6],
    )


def test_the_pair_key_ignores_the_order_of_the_organisations() -> None:
    assert domain.pair_key("lille", "kharkiv") == domain.pair_key("kharkiv", "lille")


# Organisations


def test_folding_a_name_ignores_case_and_accents() -> None:
    assert domain.fold_name("Düsseldorf") == domain.fold_name("DUSSELDORF")
    assert domain.fold_name("  Kraków ") == domain.fold_name("krakow")
    assert domain.fold_name("Kharkiv") != domain.fold_name("Kharkov")


def test_an_ascii_name_folds_as_the_full_unicode_path_folds_it() -> None:
    """fold_name skips NFKD for ASCII: the shortcut must agree with the long way round."""

    def long_way(name: str) -> str:
        decomposed = unicodedata.normalize("NFKD", name)
        stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
        return " ".join(stripped.casefold().split())

    every_ascii = "".join(chr(i) for i in range(128))
    for name in (every_ascii, "  Ville de  LILLE\t", "Druskininkai\x0b\x1c", "Bucha"):
        assert name.isascii()
        assert domain.fold_name(name) == long_way(name)
    assert domain.fold_name("Ville de Lille") == domain.fold_name("VILLE  DE LILLE")


# a contact as the handlers hand it to the domain: sealed (services/registry/privacy.py)
DUPONT = {
    "role": "director",
    "subject_id": "registry-" + "0" * 32,
    "personal": ["email", "name"],
    "sealed": "bm90IHJlYWxseSBzZWFsZWQ=",
}


def test_registering_records_the_organisation_and_its_contacts() -> None:
    state = domain.Organisation("chu-lille")
    command = domain.RegisterOrganisation(
        organisation_id="chu-lille",
        name="CHU de Lille",
        kind=domain.OrganisationKind.HOSPITAL,
        country="FR",
        coordinates={"lat": 50.61, "lon": 3.03},
        parent_id="lille",
        contacts=(DUPONT,),
    )
    events = domain.register(state, command, now=NOW, parent=LILLE)
    assert [e.event_type for e in events] == [
        ev.ORGANISATION_REGISTERED,
        ev.ORGANISATION_CONTACTS_CHANGED,
    ]
    after = apply(state, events, domain.evolve_organisation)
    assert after.parent_id == "lille"
    assert after.coordinates == {"lat": 50.61, "lon": 3.03}
    assert after.contacts == (DUPONT,), "the contact as the handler sealed it"
    assert events[1].schema_version == 2


def test_registering_under_an_unknown_parent_is_refused() -> None:
    command = domain.RegisterOrganisation(
        organisation_id="chu-lille",
        name="CHU de Lille",
        kind=domain.OrganisationKind.HOSPITAL,
        country="FR",
        parent_id="atlantis",
    )
    with pytest.raises(ValidationFailed, match="parent"):
        domain.register(
            domain.Organisation("chu-lille"),
            command,
            now=NOW,
            parent=domain.Organisation("atlantis"),
        )


@pytest.mark.parametrize("country", ["XX", "fr", "FRA", ""])
def test_registering_with_an_unknown_country_code_is_refused(country: str) -> None:
    command = domain.RegisterOrganisation(
        organisation_id="x", name="X", kind=domain.OrganisationKind.NGO, country=country
    )
    with pytest.raises(ValidationFailed, match="ISO 3166"):
        domain.register(domain.Organisation("x"), command, now=NOW)


def test_registering_beside_a_namesake_is_a_conflict_naming_it() -> None:
    command = domain.RegisterOrganisation(
        organisation_id="kharkiv-2", name="Charkiw", kind=domain.OrganisationKind.NGO, country="UA"
    )
    with pytest.raises(Conflict) as raised:
        domain.register(domain.Organisation("kharkiv-2"), command, now=NOW, namesake=KHARKIV)
    assert raised.value.extra["existing_organisation_id"] == "kharkiv"


def test_a_rename_keeps_the_old_name_as_an_alias() -> None:
    events = domain.rename(
        KHARKIV, domain.RenameOrganisation(name="Kharkiv City", reason="official"), now=NOW
    )
    assert events[0].data["previous_name"] == "Kharkiv"
    after = apply(KHARKIV, events, domain.evolve_organisation)
    assert after.name == "Kharkiv City"
    assert "Kharkiv" in after.aliases
    assert after.version == KHARKIV.version + 1


def test_renaming_to_the_current_name_records_nothing() -> None:
    assert domain.rename(KHARKIV, domain.RenameOrganisation(name="Kharkiv"), now=NOW) == []


def test_adding_a_new_spelling_records_it() -> None:
    events = domain.add_alias(KHARKIV, domain.AddAlias(alias="Харків"), now=NOW)
    after = apply(KHARKIV, events, domain.evolve_organisation)
    assert after.aliases == ("Charkiw", "Kharkov", "Харків")


@pytest.mark.parametrize("alias", ["Charkiw", "CHARKIW", "Kharkiv", "  kharkov "])
def test_adding_a_spelling_already_known_is_a_no_op(alias: str) -> None:
    assert domain.add_alias(KHARKIV, domain.AddAlias(alias=alias), now=NOW) == []


def test_a_correction_records_the_previous_values_and_the_reason() -> None:
    command = domain.CorrectOrganisation(
        changes={"region": "Nord", "coordinates": {"lat": 50.63, "lon": 3.06}},
        reason="the source gave the department",
    )
    events = domain.correct(LILLE, command, now=NOW)
    assert events[0].data["previous"] == {"region": "Hauts-de-France", "coordinates": None}
    assert events[0].data["reason"] == "the source gave the department"
    after = apply(LILLE, events, domain.evolve_organisation)
    assert after.region == "Nord"
    assert after.coordinates == {"lat": 50.63, "lon": 3.06}


def test_a_correction_leaves_out_fields_that_do_not_change() -> None:
    command = domain.CorrectOrganisation(changes={"country": "FR", "region": "Nord"}, reason="r")
    assert domain.correct(LILLE, command, now=NOW)[0].data["changes"] == {"region": "Nord"}
    unchanged = domain.CorrectOrganisation(changes={"country": "FR"}, reason="r")
    assert domain.correct(LILLE, unchanged, now=NOW) == []


@pytest.mark.parametrize("changes", [{"name": "Rijsel"}, {"contacts": []}, {"aliases": []}])
def test_a_correction_of_a_field_that_is_not_correctable_is_refused(
    changes: dict[str, Any],
) -> None:
    with pytest.raises(ValidationFailed, match="cannot be corrected"):
        domain.correct(LILLE, domain.CorrectOrganisation(changes=changes, reason="r"), now=NOW)


def test_a_correction_to_an_unknown_country_code_is_refused() -> None:
    command = domain.CorrectOrganisation(changes={"country": "XX"}, reason="r")
    with pytest.raises(ValidationFailed, match="ISO 3166"):
        domain.correct(LILLE, command, now=NOW)


def test_a_correction_making_an_organisation_its_own_parent_is_refused() -> None:
    command = domain.CorrectOrganisation(changes={"parent_id": "lille"}, reason="r")
    with pytest.raises(ValidationFailed, match="own parent"):
        domain.correct(LILLE, command, now=NOW, parent=LILLE)


def test_a_correction_to_an_unknown_kind_is_refused() -> None:
    command = domain.CorrectOrganisation(changes={"kind": "castle"}, reason="r")
    with pytest.raises(ValidationFailed, match="kind"):
        domain.correct(LILLE, command, now=NOW)


def test_changing_contacts_to_the_same_list_records_nothing() -> None:
    contacts = ({**DUPONT, "role": "mayor"},)
    events = domain.change_contacts(KHARKIV, domain.ChangeContacts(contacts=contacts), now=NOW)
    after = apply(KHARKIV, events, domain.evolve_organisation)
    assert after.contacts == contacts
    assert domain.change_contacts(after, domain.ChangeContacts(contacts=contacts), now=NOW) == []
