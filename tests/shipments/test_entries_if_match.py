"""Road entries take no If-Match (they are recorded late and in any order, whatever the
convoy's version): the header is ignored, whatever it holds, so it neither refuses a batch nor
takes it out of the per-convoy group commit, nor turns off the runs again of a lost race
(shared/web.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, entry


async def on_the_road(api: ShipmentsApi) -> int:
    """Convoy c1 dispatched; its version."""
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    dispatched = await api.entries("c1", entry("dispatch", "2022-06-07T06:10:00+02:00", "d"))
    assert dispatched.status_code == 200, dispatched.text
    version: int = dispatched.json()["version"]
    return version


def checkpoint(minute: int, entry_id: str) -> dict[str, Any]:
    return entry("checkpoint", f"2022-06-08T10:{minute:02}:00+02:00", entry_id, place="Lviv")


async def post(api: ShipmentsApi, headers: dict[str, str], *entries: Any) -> httpx.Response:
    auth = await api.as_("transports-nord", Role.LOGISTICS)
    return await api.client.post(
        "/v1/convoys/c1/entries", json={"entries": list(entries)}, headers={**auth, **headers}
    )


def together(api: ShipmentsApi) -> tuple[int, int]:
    """(batches, requests) of road entries decided together so far."""
    batcher = api.app.state.ctx.group_commits.get("road-entries")
    return (0, 0) if batcher is None else batcher.counts


async def test_any_if_match_is_ignored_and_the_entry_goes_through_the_group_commit(
    api: ShipmentsApi,
) -> None:
    version = await on_the_road(api)
    sent = [
        ("stale", '"1"'),
        ("current", f'"{version}"'),
        ("weak", f'W/"{version + 1}"'),
        ("garbage", "not a tag"),
        ("any", "*"),
    ]
    for i, (name, condition) in enumerate(sent):
        before = together(api)
        response = await post(api, {"If-Match": condition}, checkpoint(i, name))
        assert response.status_code == 200, (name, response.text)
        assert response.json()["version"] == version + 1 + i
        assert response.json()["recorded"] == 1
        assert together(api)[1] == before[1] + 1, name  # decided by the group commit
    assert len(await api.events("shipments.checkpoint-recorded")) == len(sent)


async def test_concurrent_batches_with_the_current_version_in_if_match_are_all_recorded(
    api: ShipmentsApi,
) -> None:
    """Three batches at once, each carrying the version the caller read: all recorded, one
    after the other, none answered 409."""
    version = await on_the_road(api)
    condition = {"If-Match": f'"{version}"'}
    responses = await asyncio.gather(
        *(
            post(api, condition, checkpoint(2 * i, f"a{i}"), checkpoint(2 * i + 1, f"b{i}"))
            for i in range(3)
        )
    )
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    versions = sorted(r.json()["version"] for r in responses)
    assert versions == [version + 2, version + 4, version + 6]
    assert len(await api.events("shipments.checkpoint-recorded")) == 6
    assert (await api.convoy("c1"))["version"] == version + 6


async def test_concurrent_batches_with_if_match_and_idempotency_keys_run_lost_races_again(
    api: ShipmentsApi,
) -> None:
    """With an Idempotency-Key a batch is decided alone, in a transaction of its own (no group
    commit): the batches race for the convoy's next version, and those that lose are run again
    on the state the winner left, If-Match or not."""
    version = await on_the_road(api)
    responses = await asyncio.gather(
        *(
            post(
                api,
                {"If-Match": f'"{version}"', "Idempotency-Key": f"batch-{i}"},
                checkpoint(2 * i, f"a{i}"),
                checkpoint(2 * i + 1, f"b{i}"),
            )
            for i in range(6)
        )
    )
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == [
        version + 2 * (i + 1) for i in range(6)
    ]
    assert len(await api.events("shipments.checkpoint-recorded")) == 12
    again = await post(
        api,
        {"If-Match": '"1"', "Idempotency-Key": "batch-0"},
        checkpoint(0, "a0"),
        checkpoint(1, "b0"),
    )
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(await api.events("shipments.checkpoint-recorded")) == 12
