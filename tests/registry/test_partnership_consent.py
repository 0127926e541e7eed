"""A partnership becomes agreed or signed only with both organisations' consent: each records
its agreement with its own key, or a registry administrator records both, with evidence. The
pure rules, then the API on real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from services.registry import domain
from services.registry import events as ev
from shared import auth
from shared.auth import Role
from shared.errors import Forbidden, ValidationFailed
from shared.events import Metadata, NewEvent, RecordedEvent
from tests.registry.conftest import ADMIN_EVIDENCE, KHARKIV, LEEDS, LILLE, RegistryApi
from tests.registry.conftest import assert_problem as problem

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
S = domain.PartnershipStatus
MAY = [datetime(2023, 5, d, tzinfo=UTC) for d in range(1, 10)]


def fold(state: domain.Partnership, events: Sequence[NewEvent], actor: str) -> domain.Partnership:
    for event in events:
        state = domain.evolve_partnership(
            state,
            ev.CODEC.decode(
                RecordedEvent(
                    event_id=uuid.uuid4(),
                    stream_type="partnership",
                    stream_id=f"partnership-{state.partnership_id}",
                    stream_version=state.version + 1,
                    event_type=event.event_type,
                    schema_version=1,
                    occurred_at=event.occurred_at or NOW,
                    recorded_at=NOW,
                    data=event.data,
                    metadata=Metadata(actor=actor),
                )
            ),
        )
    return state


def proposed() -> domain.Partnership:
    command = domain.ProposePartnership(
        partnership_id="lille-kharkiv",
        organisations=("lille", "kharkiv"),
        kind=domain.PartnershipKind.TWINNING,
        occurred_at=MAY[0],
    )
    parties = (
        domain.Organisation("lille", version=1),
        domain.Organisation("kharkiv", version=1),
    )
    state = domain.Partnership("lille-kharkiv")
    events = domain.propose(state, command, now=NOW, acting_for="lille", parties=parties)
    return fold(state, events, "lille-key")


def move(
    state: domain.Partnership,
    to: domain.PartnershipStatus,
    when: datetime,
    acting_for: str | None,
    evidence: ev.Evidence | None = None,
) -> list[NewEvent]:
    return domain.change_status(
        state,
        domain.ChangeStatus(to=to, occurred_at=when, evidence=evidence),
        now=NOW,
        acting_for=acting_for,
    )


# Pure rules


@pytest.mark.parametrize("to", [S.AGREED, S.SIGNED])
def test_a_members_move_to_a_binding_status_records_only_its_own_agreement(
    to: domain.PartnershipStatus,
) -> None:
    state = proposed()
    events = move(state, to, MAY[1], "lille")
    assert [e.event_type for e in events] == [ev.PARTNERSHIP_AGREEMENT_RECORDED]
    assert (events[0].data["organisation_id"], events[0].data["to_status"]) == ("lille", to)
    after = fold(state, events, "lille-key")
    assert after.status is S.PROPOSED
    assert after.agreements == (domain.Agreement("lille", to.value, MAY[1], "lille-key"),)


def test_the_second_organisations_agreement_changes_the_status_as_of_the_later_one() -> None:
    state = fold(proposed(), move(proposed(), S.SIGNED, MAY[3], "lille"), "lille-key")
    # Kharkiv's agreement is dated before Lille's: the pact holds from Lille's date
    events = move(state, S.SIGNED, MAY[2], "kharkiv")
    assert [e.event_type for e in events] == [
        ev.PARTNERSHIP_AGREEMENT_RECORDED,
        ev.PARTNERSHIP_STATUS_CHANGED,
    ]
    assert events[1].occurred_at == MAY[3]
    after = fold(state, events, "kharkiv-key")
    assert after.status is S.SIGNED
    assert [(a.organisation_id, a.actor) for a in after.agreements] == [
        ("lille", "lille-key"),
        ("kharkiv", "kharkiv-key"),
    ]


def test_agreeing_again_records_nothing_and_changes_nothing() -> None:
    state = fold(proposed(), move(proposed(), S.AGREED, MAY[1], "lille"), "lille-key")
    assert move(state, S.AGREED, MAY[2], "lille") == []


def test_agreements_to_different_statuses_do_not_make_a_pair() -> None:
    state = fold(proposed(), move(proposed(), S.SIGNED, MAY[1], "lille"), "lille-key")
    events = move(state, S.AGREED, MAY[2], "kharkiv")
    assert [e.event_type for e in events] == [ev.PARTNERSHIP_AGREEMENT_RECORDED]
    assert fold(state, events, "kharkiv-key").status is S.PROPOSED


def test_an_agreement_given_before_the_last_status_change_no_longer_counts() -> None:
    state = fold(proposed(), move(proposed(), S.SIGNED, MAY[1], "lille"), "lille-key")
    state = fold(state, move(state, S.UNDER_DISCUSSION, MAY[2], None), "admin-key")
    events = move(state, S.SIGNED, MAY[3], "kharkiv")
    assert [e.event_type for e in events] == [ev.PARTNERSHIP_AGREEMENT_RECORDED]
    assert fold(state, events, "kharkiv-key").status is S.UNDER_DISCUSSION


@pytest.mark.parametrize("to", [S.AGREED, S.SIGNED])
def test_an_administrator_moves_to_a_binding_status_only_with_evidence(
    to: domain.PartnershipStatus,
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        move(proposed(), to, MAY[1], None)
    assert raised.value.extra["invalid_params"][0]["name"] == "evidence"
    record = ev.Evidence(**ADMIN_EVIDENCE)
    events = move(proposed(), to, MAY[1], None, evidence=record)
    assert [e.event_type for e in events] == [ev.PARTNERSHIP_STATUS_CHANGED]
    assert events[0].data["evidence"] == record.model_dump()


@pytest.mark.parametrize("to", [S.UNDER_DISCUSSION, S.TERMINATED])
def test_a_member_still_moves_to_a_status_that_binds_no_one_at_once(
    to: domain.PartnershipStatus,
) -> None:
    events = move(proposed(), to, MAY[1], "kharkiv")
    assert [e.event_type for e in events] == [ev.PARTNERSHIP_STATUS_CHANGED]


def test_an_organisation_outside_the_partnership_cannot_agree_for_it() -> None:
    with pytest.raises(Forbidden):
        move(proposed(), S.SIGNED, MAY[1], "leeds")


# Over HTTP


@pytest.fixture
async def pact(api: RegistryApi) -> RegistryApi:
    await api.register(LILLE, KHARKIV, LEEDS)
    await api.propose(
        partnership_id="lille-kharkiv",
        organisations=["lille", "kharkiv"],
        kind="twinning",
        occurred_at="2023-05-01T00:00:00Z",
    )
    return api


async def agree(
    api: RegistryApi, organisation: str, to: str, when: str
) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(
        "/v1/partnerships/lille-kharkiv/transitions",
        json={"to": to, "occurred_at": when},
        headers=await api.as_(organisation, Role.MEMBER),
    )
    return response.status_code, response.json()


async def partnership(api: RegistryApi, **params: str) -> dict[str, Any]:
    response = await api.client.get(
        "/v1/partnerships/lille-kharkiv", params=params, headers=api.as_admin
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_signing_takes_both_organisations_each_with_its_own_key(pact: RegistryApi) -> None:
    api = pact
    lille_key = auth.parse_token(await api.key("lille", Role.MEMBER))[0]
    kharkiv_key = auth.parse_token(await api.key("kharkiv", Role.MEMBER))[0]
    assert await agree(api, "lille", "signed", "2023-05-02T00:00:00Z") == (
        202,
        {
            "partnership_id": "lille-kharkiv",
            "status": "proposed",
            "version": 2,
            "agreed": ["lille"],
            "awaiting_agreement_of": ["kharkiv"],
        },
    )
    # Lille asking again is still Lille alone
    status, body = await agree(api, "lille", "signed", "2023-05-03T00:00:00Z")
    assert (status, body["status"], body["version"]) == (202, "proposed", 2)
    waiting = await partnership(api)
    assert (waiting["status"], waiting["signed_at"]) == ("proposed", None)
    assert [(a["organisation_id"], a["to_status"], a["actor"]) for a in waiting["agreements"]] == [
        ("lille", "signed", lille_key)
    ]
    status, body = await agree(api, "kharkiv", "signed", "2023-05-04T00:00:00Z")
    assert (status, body) == (
        200,
        {"partnership_id": "lille-kharkiv", "status": "signed"} | {"version": 4},
    )
    signed = await partnership(api)
    assert signed["status"] == "signed"
    assert signed["signed_at"].startswith("2023-05-04")
    assert [
        (a["organisation_id"], a["occurred_at"][:10], a["actor"]) for a in signed["agreements"]
    ] == [
        ("lille", "2023-05-02", lille_key),
        ("kharkiv", "2023-05-04", kharkiv_key),
    ]
    assert [(h["status"], h["actor"]) for h in signed["history"]] == [
        ("proposed", api.admin.split("_")[1]),
        ("signed", kharkiv_key),
    ]
    assert len(await api.events(ev.PARTNERSHIP_AGREEMENT_RECORDED)) == 2
    assert len(await api.events(ev.PARTNERSHIP_STATUS_CHANGED)) == 1
    before = await partnership(api, as_of="2023-05-03T00:00:00Z")
    assert before["status"] == "proposed"
    assert [(a["organisation_id"], a["actor"]) for a in before["agreements"]] == [
        ("lille", lille_key)
    ]


async def test_one_organisation_cannot_move_a_pact_to_agreed_or_signed_alone(
    pact: RegistryApi,
) -> None:
    api = pact
    for to in ("agreed", "signed"):
        status, body = await agree(api, "kharkiv", to, "2023-05-02T00:00:00Z")
        assert (status, body["status"], body["awaiting_agreement_of"]) == (
            202,
            "proposed",
            ["lille"],
        )
    assert (await partnership(api))["status"] == "proposed"
    assert await api.events(ev.PARTNERSHIP_STATUS_CHANGED) == []


async def test_a_third_organisation_cannot_agree_for_either_side(pact: RegistryApi) -> None:
    api = pact
    before = await api.count()
    response = await api.client.post(
        "/v1/partnerships/lille-kharkiv/transitions",
        json={"to": "signed"},
        headers=await api.as_("leeds", Role.MEMBER),
    )
    problem(response, 403)
    assert await api.count() == before


@pytest.mark.parametrize("to", ["agreed", "signed"])
async def test_an_administrators_move_without_evidence_is_a_422_naming_it_and_stores_nothing(
    pact: RegistryApi, to: str
) -> None:
    api = pact
    before = await api.count()
    response = await api.client.post(
        "/v1/partnerships/lille-kharkiv/transitions", json={"to": to}, headers=api.as_admin
    )
    body = problem(response, 422)
    assert [p["name"] for p in body["invalid_params"]] == ["evidence"]
    assert await api.count() == before
    with_evidence = await api.client.post(
        "/v1/partnerships/lille-kharkiv/transitions",
        json={"to": to, "evidence": ADMIN_EVIDENCE},
        headers=api.as_admin,
    )
    assert with_evidence.status_code == 200, with_evidence.text
    got = await partnership(api)
    assert (got["status"], got["history"][-1]["evidence"]) == (to, ADMIN_EVIDENCE)
    assert got["agreements"] == []


async def test_an_agreement_replayed_with_its_idempotency_key_is_answered_alike(
    pact: RegistryApi,
) -> None:
    api = pact
    headers = {**await api.as_("lille", Role.MEMBER), "Idempotency-Key": "lille-agrees-1"}
    answers = [
        await api.client.post(
            "/v1/partnerships/lille-kharkiv/transitions", json={"to": "agreed"}, headers=headers
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert len(await api.events(ev.PARTNERSHIP_AGREEMENT_RECORDED)) == 1
