"""Free text in shipments requests (references, route places, notes, vehicle types, drivers,
reasons, road entries, the receiver) holds no control character but tab and line breaks: a
422 naming the field, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.auth import Role
from tests.shipments.conftest import (
    DRIVERS,
    TRUCKS,
    ShipmentsApi,
    assert_problem,
    entry,
    plan_body,
)

NOT_TEXT = [
    pytest.param("a\u0001b", "U+0001", id="soh"),
    pytest.param("\u001b[31mred", "U+001B", id="escape"),
    pytest.param("del\u007fete", "U+007F", id="delete"),
    pytest.param("c1\u009bcsi", "U+009B", id="c1-csi"),
]


async def _post(
    api: ShipmentsApi, path: str, body: dict[str, Any], who: tuple[str, Role]
) -> httpx.Response:
    headers = {**await api.as_(*who), "Content-Type": "application/json"}
    return await api.client.post(path, content=json.dumps(body), headers=headers)


def _refused(response: httpx.Response, field: str, code_point: str) -> None:
    assert response.status_code == 422, (field, response.text)
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == [field], problem
    assert code_point in problem["detail"] and "control character" in problem["detail"]


@pytest.mark.parametrize(("text", "code_point"), NOT_TEXT)
async def test_a_convoy_plan_with_a_control_character_in_its_text_is_a_422_naming_it(
    api: ShipmentsApi, text: str, code_point: str
) -> None:
    lille = ("lille", Role.LOGISTICS)
    for field, body in [
        ("reference", plan_body(reference=text)),
        ("route.1", plan_body(route=["Lille", text])),
        ("note", plan_body(note=text)),
        ("vehicles.0.type", plan_body(vehicles=[{**TRUCKS[0], "type": text}, TRUCKS[1]])),
        ("drivers.0.name", plan_body(drivers=[{**DRIVERS[0], "name": text}])),
        ("drivers.0.phone", plan_body(drivers=[{**DRIVERS[0], "phone": text}])),
    ]:
        _refused(await _post(api, "/v1/convoys", body, lille), field, code_point)
    assert await api.count() == 0


@pytest.mark.parametrize(("text", "code_point"), NOT_TEXT)
async def test_road_entries_a_cancellation_and_a_delivery_refuse_control_characters(
    api: ShipmentsApi, text: str, code_point: str
) -> None:
    await api.plan()
    before = await api.count()
    carrier = ("transports-nord", Role.LOGISTICS)
    at = "2022-06-08T18:30:00+02:00"
    for field, one in [
        ("entries.0.checkpoint.place", entry("checkpoint", at, place=text)),
        ("entries.0.checkpoint.note", entry("checkpoint", at, place="Wrocław", note=text)),
        (
            "entries.0.incident.description",
            entry("incident", at, incident="delay", description=text),
        ),
    ]:
        body = {"entries": [one]}
        _refused(await _post(api, "/v1/convoys/c1/entries", body, carrier), field, code_point)
    lille = ("lille", Role.LOGISTICS)
    cancel = await _post(api, "/v1/convoys/c1/cancel", {"reason": text}, lille)
    _refused(cancel, "reason", code_point)
    delivery = {
        "receiver": {"name": "Olha Kravchenko", "role": text},
        "lines": [{"manifest_line_id": "m1", "received": "1"}],
    }
    kharkiv = ("kharkiv", Role.LOGISTICS)
    _refused(
        await _post(api, "/v1/convoys/c1/delivery", delivery, kharkiv), "receiver.role", code_point
    )
    assert await api.count() == before
    assert (await api.convoy())["status"] == "planned"


async def test_tabs_and_line_breaks_are_text(api: ShipmentsApi) -> None:
    note = "two trucks\tno trailer\nleave at dawn\r\nKraków — Łódź"
    await api.plan(note=note)
    [planned] = await api.events("shipments.convoy-planned")
    assert planned["note"] == note
