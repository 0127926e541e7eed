"""A webhook claim serves a batch of events, one delivery after another; what changes while it
does reaches the next delivery, not the next claim (shared/webhook_dispatch.py): a key revoked
after the first delivery of a batch gets nothing more sent, a driver erased after it is sent as
`(erased)` in the rest of the batch. A disabled subscription cannot be replayed (409), its
cursor and reason kept for resubscribing. The receiver itself revokes or erases while it holds
the first delivery, so what happens before the second attempt is certain, not a race."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from shared import privacy
from shared.auth import Role
from tests.shared.test_webhooks import Receiver, Stack, stack  # noqa: F401  (the fixture)
from tests.shipments.conftest import DRIVERS, assert_problem

pytestmark = pytest.mark.once  # as tests/shared/test_webhooks.py: plain SQL

CONVOYS = ("c1", "c2", "c3", "c4", "c5")
DRIVER = DRIVERS[0]["name"]


@dataclass
class ActingReceiver(Receiver):
    """A receiver that runs `on_first` once, while it holds the first delivery (before it
    answers): the dispatcher is then between that attempt and the next."""

    on_first: Callable[[], Awaitable[None]] | None = None

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.on_first is not None:
            act, self.on_first = self.on_first, None
            await act()
        await super().app(scope, receive, send)


@contextlib.asynccontextmanager
async def acting(stk: Stack, on_first: Callable[[], Awaitable[None]]) -> AsyncIterator[Receiver]:
    """In place of the stack's receiver (its port, its secrets), one that runs `on_first`."""
    receiver = ActingReceiver(stk.receiver.port, secrets=stk.receiver.secrets)
    receiver.on_first = on_first
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def _sql(stk: Stack, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stk.api.url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _key_id(stk: Stack, organisation: str, role: Role) -> str:
    token = (await stk.api.as_(organisation, role))["Authorization"].split()[1]
    return token.split("_")[1]


async def _subscription(stk: Stack, sid: str) -> dict[str, Any]:
    answer = await stk.get("kharkiv", Role.LOGISTICS, f"/v1/webhooks/{sid}")  # another key
    assert answer.status_code == 200, answer.text
    got: dict[str, Any] = answer.json()
    return got


async def test_a_key_revoked_mid_batch_gets_nothing_more_sent(stack: Stack) -> None:  # noqa: F811
    sub = await stack.subscribe("kharkiv", Role.MEMBER, "/k")
    key_id = await _key_id(stack, "kharkiv", Role.MEMBER)
    for convoy_id in CONVOYS:
        await stack.api.plan(convoy_id)
    await stack.seal()
    planned = await stack.positions("shipments.convoy-planned")
    assert len(planned) == len(CONVOYS)

    async def revoke() -> None:
        await _sql(stack, "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", key_id)

    async with acting(stack, revoke) as receiver:
        assert await stack.dispatcher.round() == 1  # one claim, for the whole batch
        assert await stack.dispatcher.round() == 0
    got = receiver.at("/k")
    assert [r.headers["webhook-id"] for r in got] == [planned[0][1]]  # the one in flight only
    now = await _subscription(stack, sub["subscription_id"])
    assert now["status"] == "disabled"
    assert "revoked" in now["last_error"]
    assert now["after_position"] == planned[0][0]  # resubscribe from here + 1
    log = await _sql(
        stack,
        "SELECT position FROM webhook_deliveries WHERE subscription_id = $1",
        sub["subscription_id"],
    )
    assert [r["position"] for r in log] == [planned[0][0]]


async def test_drivers_erased_mid_batch_are_sent_erased(stack: Stack) -> None:  # noqa: F811
    await stack.subscribe("kharkiv", Role.MEMBER, "/k")  # the recipient: sees the drivers
    for convoy_id in CONVOYS:
        await stack.api.plan(convoy_id)
    await stack.seal()
    auditor = await stack.api.as_("audit", Role.AUDITOR)
    subjects = []
    for convoy_id in CONVOYS:
        convoy = (await stack.api.client.get(f"/v1/convoys/{convoy_id}", headers=auditor)).json()
        subjects += [d["subject_id"] for d in convoy["drivers"]]
    assert len(subjects) == len(CONVOYS) * len(DRIVERS)
    erasures = []

    async def erase_every_driver() -> None:
        carrier = await stack.api.as_("lille", Role.LOGISTICS)
        for subject in subjects:
            answer = await stack.api.client.post(
                f"/v1/privacy/subjects/{subject}/erasure",
                json={"legal_basis": "gdpr-art-17"},
                headers=carrier,
            )
            erasures.append(answer.status_code)

    async with acting(stack, erase_every_driver) as receiver:
        assert await stack.dispatcher.round() == 1  # one claim, for the whole batch
    assert erasures == [200] * len(subjects)
    got = receiver.at("/k")
    assert [r.body["data"]["stream_id"] for r in got] == [f"convoy-{c}" for c in CONVOYS]
    first, *after = (json.dumps(r.body, ensure_ascii=False) for r in got)
    assert DRIVER in first  # built before the erasure: the name, as the API showed it then
    for text, convoy_id in zip(after, CONVOYS[1:], strict=True):
        assert DRIVER not in text, convoy_id
        assert all(d["name"] not in text for d in DRIVERS), convoy_id
        assert privacy.ERASED in text, convoy_id


async def test_a_disabled_subscription_is_not_replayed_and_keeps_its_cursor(
    stack: Stack,  # noqa: F811
) -> None:
    await stack.receiver.start()
    sub = await stack.subscribe("kharkiv", Role.MEMBER, "/k")
    sid = sub["subscription_id"]
    key_id = await _key_id(stack, "kharkiv", Role.MEMBER)
    await stack.api.plan("c1")
    await stack.seal()
    await stack.dispatcher.round()
    assert len(stack.receiver.at("/k")) == 1
    delivered = (await stack.positions("shipments.convoy-planned"))[0][0]
    await _sql(
        stack, "UPDATE api_keys SET expires_at = now() - interval '1 s' WHERE key_id = $1", key_id
    )
    await stack.api.plan("c2")
    await stack.seal()
    await stack.dispatcher.round()
    before = await _subscription(stack, sid)
    assert before["status"] == "disabled"
    assert "revoked or expired" in before["last_error"]
    assert before["after_position"] == delivered  # resubscribe from here + 1

    answer = await stack.api.client.post(
        f"/v1/webhooks/{sid}/replay",
        json={"from_position": 1},
        headers=await stack.api.as_("kharkiv", Role.LOGISTICS),
    )
    assert_problem(answer, 409, "conflict")
    assert "disabled" in answer.json()["detail"]
    assert await _subscription(stack, sid) == before  # nothing changed
    revision = await _sql(
        stack, "SELECT revision FROM webhook_subscriptions WHERE subscription_id = $1", sid
    )
    # the key renewed later: the subscription stays disabled, nothing is sent
    await _sql(
        stack, "UPDATE api_keys SET expires_at = now() + interval '1 day' WHERE key_id = $1", key_id
    )
    again = await stack.api.client.post(
        f"/v1/webhooks/{sid}/replay",
        json={"from_position": 1},
        headers=await stack.api.as_("kharkiv", Role.MEMBER),
    )
    assert_problem(again, 409, "conflict")
    assert await stack.dispatcher.round() == 0
    assert len(stack.receiver.received) == 1  # c1's, before the key expired
    assert await _subscription(stack, sid) == before
    assert revision == await _sql(
        stack, "SELECT revision FROM webhook_subscriptions WHERE subscription_id = $1", sid
    )
