"""A webhook subscription's filters name only what it can receive (docs/webhooks.md): the
service's own event types (an unknown one is refused with the list of its types), `audit.*`
types for keys that read the raw feed only (the only keys they reach), and no stream of
another service's records or log. Refused with a 422 naming the item; nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from services.pledges import events as pledges_events
from services.registry import events as registry_events
from services.shipments import events as shipments_events
from shared import webhooks
from shared.auth import Role
from tests.pledges.conftest import PledgesApi, assert_problem

URL = "https://partner.example/hook"


async def subscribe(api: PledgesApi, role: Role, **body: Any) -> Any:
    headers = await api.as_("kharkiv", role)
    return await api.client.post("/v1/webhooks", json={"url": URL, **body}, headers=headers)


async def listed(api: PledgesApi) -> list[dict[str, Any]]:
    answer = await api.client.get("/v1/webhooks", headers=await api.as_("kharkiv", Role.MEMBER))
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


@pytest.mark.parametrize(
    ("role", "body", "name", "said"),
    [
        (
            Role.MEMBER,
            {"event_types": ["pledges.pledge-made", "audit.chain-checkpoint"]},
            "event_types.1",
            "raw event feed",
        ),
        (Role.MEMBER, {"event_types": ["audit.signing-key-changed"]}, "event_types.0", "feed"),
        (Role.AUDITOR, {"event_types": ["audit.nothing-such"]}, "event_types.0", "audit"),
        (
            Role.MEMBER,
            {"event_types": ["pledges.pledge-exploded"]},
            "event_types.0",
            "pledges.pledge-made",  # the list of its types
        ),
        (Role.MEMBER, {"event_types": ["shipments.convoy-dispatched"]}, "event_types.0", "*"),
        (Role.MEMBER, {"event_types": ["privacy.subject-erased"]}, "event_types.0", "feed"),
        (Role.AUDITOR, {"event_types": ["privacy.nothing-such"]}, "event_types.0", "privacy"),
        (Role.MEMBER, {"streams": ["redactions-pledges"]}, "streams.0", "feed"),
        (Role.MEMBER, {"streams": ["subject-pledges-ab12"]}, "streams.0", "feed"),
        (Role.AUDITOR, {"streams": ["subject-shipments-ab12"]}, "streams.0", "shipments"),
        (Role.MEMBER, {"streams": ["needs-x"]}, "streams.0", "no stream of pledges"),
        (Role.MEMBER, {"streams": ["need-"]}, "streams.0", "no stream of pledges"),
        (Role.MEMBER, {"streams": ["need-n1", "convoy-x"]}, "streams.1", "shipments"),
        (Role.MEMBER, {"streams": ["organisation-lille"]}, "streams.0", "registry"),
        (Role.MEMBER, {"streams": ["partnership-p1"]}, "streams.0", "registry"),
        (Role.AUDITOR, {"streams": ["checkpoint-shipments"]}, "streams.0", "shipments"),
        (Role.AUDITOR, {"streams": ["signing-key-registry"]}, "streams.0", "registry"),
    ],
)
async def test_a_filter_that_can_never_match_is_refused_and_nothing_stored(
    api: PledgesApi, role: Role, body: dict[str, Any], name: str, said: str
) -> None:
    problem = assert_problem(await subscribe(api, role, **body), 422)
    assert [p["name"] for p in problem["invalid_params"]] == [name], problem
    assert said in problem["detail"], problem
    assert await listed(api) == []


@pytest.mark.parametrize(
    ("role", "body"),
    [
        (Role.MEMBER, {"event_types": ["pledges.pledge-made", "pledges.need-posted"]}),
        (Role.AUDITOR, {"event_types": ["audit.chain-checkpoint", "pledges.pledge-made"]}),
        (Role.SERVICE, {"event_types": ["audit.signing-key-changed"]}),
        (Role.MEMBER, {"streams": ["need-kharkiv-generators", "pledge-p1"]}),
        (Role.AUDITOR, {"streams": ["checkpoint-pledges", "signing-key-pledges"]}),
        (Role.AUDITOR, {"event_types": ["privacy.subject-erased", "privacy.log-redacted"]}),
        (Role.AUDITOR, {"streams": ["redactions-pledges", "subject-pledges-ab12"]}),
    ],
)
async def test_filters_the_service_can_match_are_accepted(
    api: PledgesApi, role: Role, body: dict[str, Any]
) -> None:
    answer = await subscribe(api, role, **body)
    assert answer.status_code == 201, answer.text
    assert [w["subscription_id"] for w in await listed(api)] == [answer.json()["subscription_id"]]


def test_the_record_streams_are_the_services_own() -> None:
    assert webhooks.RECORD_STREAMS == {
        "registry": (
            registry_events.STREAM_ORGANISATION,
            registry_events.STREAM_PARTNERSHIP,
            registry_events.STREAM_API_KEY,
        ),
        "pledges": (pledges_events.STREAM_NEED, pledges_events.STREAM_PLEDGE),
        "shipments": (shipments_events.STREAM_CONVOY,),
    }
