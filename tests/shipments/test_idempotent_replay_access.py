"""An Idempotency-Key replays a stored answer only to a key that may make the write.

Known to fail: shared/web.py (execute_write) looks stored answers up by organisation and key
before the use case runs, and shipments authorizes inside its use cases (the rules need the
convoy's parties), so any key of the same organisation that sends the same Idempotency-Key and
body gets the stored 2xx (`Idempotent-Replayed: true`) whatever its roles. Nothing is appended.
The registry and pledges check roles in the route, before the lookup. Strict: remove the marker
once the fix (replay only to the key id that wrote, or authorize first) is in.
"""

from __future__ import annotations

import pytest

from shared.auth import Role
from tests.shipments.conftest import DEPARTURE, DRIVERS, TRUCKS, ShipmentsApi, assert_problem


@pytest.mark.xfail(strict=True, reason="idempotent replay precedes authorization (shared/web.py)")
async def test_a_key_without_the_logistics_role_gets_403_not_the_planners_stored_answer(
    api: ShipmentsApi,
) -> None:
    body = {
        "convoy_id": "c1",
        "reference": "Lille - Kharkiv medicines",
        "origin_id": "lille",
        "destination_id": "kharkiv",
        "carrier_id": "transports-nord",
        "planned_departure": DEPARTURE,
        "vehicles": TRUCKS,
        "drivers": DRIVERS,
        "occurred_at": "2022-06-01T09:00:00+02:00",
    }
    retry = {"Idempotency-Key": "plan-c1"}
    planned = await api.client.post(
        "/v1/convoys", json=body, headers={**await api.as_("lille", Role.LOGISTICS), **retry}
    )
    assert planned.status_code == 201, planned.text
    events = await api.count()
    for role in (Role.AUDITOR, Role.MEMBER, Role.SERVICE):
        replayed = await api.client.post(
            "/v1/convoys", json=body, headers={**await api.as_("lille", role), **retry}
        )
        assert await api.count() == events
        assert_problem(replayed, 403)
