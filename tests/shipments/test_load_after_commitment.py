"""Goods are loaded after their pledge line was committed: shipments keeps the commitment
instant pledges announced, and a load dated before it is a 409 saying when it happened."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem

COMMITTED = datetime(2022, 6, 6, 12, 0, tzinfo=UTC)


async def test_a_load_dated_before_the_commitment_is_refused_with_when_it_happened(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50", occurred_at=COMMITTED)
    await api.plan("c1")
    before = await api.count()

    early = assert_problem(
        await api.load(occurred_at="2022-06-06T13:59:59+02:00"), 409, "load-before-commitment"
    )

    assert early["committed_at"] == "2022-06-06T12:00:00+00:00"
    assert "committed at 2022-06-06T12:00:00+00:00" in early["detail"]
    assert await api.count() == before
    at_once = await api.load(occurred_at="2022-06-06T14:00:00+02:00")
    assert at_once.status_code == 201, at_once.text


async def test_later_announcements_of_the_line_keep_its_first_commitment_instant(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50", position=1, occurred_at=COMMITTED)
    # amended a week later: the line was still committed on the 6th
    await api.pledge_line(quantity="60", position=2, occurred_at=datetime(2022, 6, 13, tzinfo=UTC))
    await api.plan("c1")

    loaded = await api.load(occurred_at="2022-06-07T09:00:00+02:00")

    assert loaded.status_code == 201, loaded.text
    line = await api.client.get(
        "/v1/pledge-lines/p1/l1", headers=await api.as_("lille", Role.MEMBER)
    )
    assert line.json()["committed_at"] == "2022-06-06T12:00:00+00:00"
    assert line.json()["quantity"] == "60"
    assert_problem(await api.load(manifest_line_id="m2", occurred_at="2022-06-05T09:00:00Z"), 409)


async def test_a_line_never_announced_as_committed_has_no_commitment_instant(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(status="withdrawn", occurred_at=COMMITTED)

    line = await api.client.get(
        "/v1/pledge-lines/p1/l1", headers=await api.as_("lille", Role.MEMBER)
    )

    assert line.json()["committed_at"] is None
