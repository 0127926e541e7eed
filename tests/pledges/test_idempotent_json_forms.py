"""The hunter's case on the pledges service: a pledge re-sent with the same Idempotency-Key and
the same JSON written another way (indented, keys in another order) is a retry, answered with
the first answer and recording nothing more; other JSON under the key is still a 422."""

from __future__ import annotations

import json

from tests.pledges.conftest import PledgesApi, assert_problem, generators_pledge


async def test_a_pledge_re_sent_indented_with_its_key_is_replayed(api: PledgesApi) -> None:
    body = generators_pledge(
        partnership_id=None, lines=[{**generators_pledge()["lines"][0], "need_id": None}]
    )
    headers = {
        **await api.as_("lille"),
        "Idempotency-Key": "lille-2027-001",
        "Content-Type": "application/json",
    }
    first = await api.client.post("/v1/pledges", content=json.dumps(body), headers=headers)
    assert first.status_code == 201, first.text
    for text in (json.dumps(body, indent=2), json.dumps(dict(sorted(body.items(), reverse=True)))):
        again = await api.client.post("/v1/pledges", content=text, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert await api.count_events() == 1
    other = {**body, "lines": [{**body["lines"][0], "quantity": "99"}]}
    refused = await api.client.post(
        "/v1/pledges", content=json.dumps(other, indent=2), headers=headers
    )
    assert assert_problem(refused, 422)["type"].endswith("/idempotency-key-reused")
    assert await api.count_events() == 1


async def test_numbers_one_float_apart_under_one_key_are_two_requests(api: PledgesApi) -> None:
    """A quantity is read as written (shared/json_body.py): 123456789012.123456 and
    123456789012.12346 are two quantities, though one float; the second under the first's key
    is refused, not answered with the first's answer."""
    line = {**generators_pledge()["lines"][0], "need_id": None, "item": "Diesel", "unit": "kg"}
    del line["weight_kg"]
    body = generators_pledge(partnership_id=None, lines=[line])
    text = json.dumps(body)
    quoted = json.dumps(line["quantity"])
    headers = {
        **await api.as_("lille"),
        "Idempotency-Key": "lille-2027-002",
        "Content-Type": "application/json",
    }
    exact = text.replace(f'"quantity": {quoted}', '"quantity": 123456789012.123456')
    assert exact != text
    first = await api.client.post("/v1/pledges", content=exact, headers=headers)
    assert first.status_code == 201, first.text
    replay = await api.client.post("/v1/pledges", content=exact, headers=headers)
    assert replay.headers.get("idempotent-replayed") == "true"
    rounded = exact.replace("123456789012.123456", "123456789012.12346")
    refused = await api.client.post("/v1/pledges", content=rounded, headers=headers)
    assert assert_problem(refused, 422)["type"].endswith("/idempotency-key-reused")
    assert await api.count_events() == 1
