"""An Idempotency-Key replays a stored answer only to a caller that could have made the write.

Shipments authorizes inside its use cases (the rules need the convoy's parties), after the
stored answer is looked up; so the lookup itself refuses another key of the same organisation
that lacks a role the writing key held. The same key, or a rotated key with the same roles,
still gets its retry answered.
"""

from __future__ import annotations

from shared.auth import Role
from shared.testing import issue_key
from tests.shipments.conftest import ShipmentsApi, assert_problem, plan_body

BODY = plan_body("c1")
RETRY = {"Idempotency-Key": "plan-c1"}


async def test_a_key_without_the_logistics_role_gets_403_not_the_planners_stored_answer(
    api: ShipmentsApi,
) -> None:
    planned = await api.client.post(
        "/v1/convoys", json=BODY, headers={**await api.as_("lille", Role.LOGISTICS), **RETRY}
    )
    assert planned.status_code == 201, planned.text
    events = await api.count()
    for role in (Role.AUDITOR, Role.MEMBER, Role.SERVICE):
        replayed = await api.client.post(
            "/v1/convoys", json=BODY, headers={**await api.as_("lille", role), **RETRY}
        )
        assert await api.count() == events
        problem = assert_problem(replayed, 403)
        assert "logistics" in problem["detail"]
        assert "Idempotent-Replayed" not in replayed.headers


async def test_the_same_key_and_a_rotated_key_with_the_role_get_the_first_answer(
    api: ShipmentsApi,
) -> None:
    writer = await api.as_("lille", Role.LOGISTICS)
    planned = await api.client.post("/v1/convoys", json=BODY, headers={**writer, **RETRY})
    assert planned.status_code == 201, planned.text
    events = await api.count()
    rotated = await issue_key(api.url, organisation="lille", roles=[Role.LOGISTICS, Role.MEMBER])
    for headers in (writer, {"Authorization": f"Bearer {rotated}"}):
        again = await api.client.post("/v1/convoys", json=BODY, headers={**headers, **RETRY})
        assert again.status_code == 201, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == planned.json()
    assert await api.count() == events
