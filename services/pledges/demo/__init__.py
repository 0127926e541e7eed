"""Demo needs and pledges from the articles in the design sources (demo/data.py), over HTTP.

`python -m services.pledges.demo --url http://127.0.0.1:8102 --key <registry_admin key>`.
Runs after the registry demo, while this service's copy of the registry may still be filling:
a write refused for an organisation or partnership not known yet is retried for up to 30 s.
Safe to re-run: every write carries an Idempotency-Key derived from its body, a need or pledge
that exists already (409) is fine, and later steps are made only if the record lacks them.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import httpx

from services.pledges.demo.data import NEEDS, PLEDGES, DemoPledge
from shared import demo_client

WAIT_FOR_REGISTRY = 30.0
RETRY_EVERY = 1.0
_NOT_YET = ("unknown organisation", "unknown partnership")


class Summary(NamedTuple):
    needs_posted: int
    needs_present: int
    pledges_made: int
    pledges_present: int
    changes: int


def _not_known_yet(response: httpx.Response) -> bool:
    if response.status_code != 422:
        return False
    params = response.json().get("invalid_params") or []
    return any(p.get("reason") in _NOT_YET for p in params)


async def _post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], kind: str, ident: str
) -> httpx.Response:
    """POST with a key of `kind` (demo_client.key), retrying while the registry's organisations
    or partnerships are still arriving."""
    headers = demo_client.keyed(kind, ident, body)
    deadline = asyncio.get_running_loop().time() + WAIT_FOR_REGISTRY
    while True:
        response = await client.post(path, json=body, headers=headers)
        if not _not_known_yet(response) or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(RETRY_EVERY)


async def _load_need(client: httpx.AsyncClient, body: dict[str, Any]) -> bool:
    """Post a need unless it exists; returns whether it was posted now."""
    response = await _post(client, "/v1/needs", body, "need", body["need_id"])
    if response.status_code == 201:
        return not demo_client.replayed(response)
    if response.status_code == 409:
        return False
    raise demo_client.refused(body["need_id"], response)


async def _pledge(client: httpx.AsyncClient, pledge_id: str) -> dict[str, Any] | None:
    return demo_client.found(pledge_id, await client.get(f"/v1/pledges/{pledge_id}"))


async def _step(client: httpx.AsyncClient, path: str, body: dict[str, Any], what: str) -> int:
    response = await _post(client, path, body, "step", path.replace("/", "-"))
    if response.status_code not in (200, 201):
        raise demo_client.refused(what, response)
    return int(not demo_client.replayed(response))


async def _load_pledge(client: httpx.AsyncClient, p: DemoPledge) -> tuple[bool, int]:
    """Make the pledge unless it exists, then the steps it has not made yet: amendments,
    commitment, the donor's figures, receipts. Returns (made now, steps made now)."""
    pid = p.body["pledge_id"]
    made = False
    if await _pledge(client, pid) is None:
        response = await _post(client, "/v1/pledges", p.body, "pledge", pid)
        if response.status_code == 201:
            made = not demo_client.replayed(response)
        elif response.status_code != 409:
            raise demo_client.refused(pid, response)
    state = await _pledge(client, pid)
    if state is None:
        raise RuntimeError(f"pledge {pid} is missing after it was made")
    lines = {line["line_id"]: line for line in state["lines"]}
    steps = 0
    for line_id, body in p.amendments:
        if not any(a["new"] == body["quantity"] for a in lines[line_id]["amendments"]):
            path = f"/v1/pledges/{pid}/lines/{line_id}/amendments"
            steps += await _step(client, path, body, f"{pid} amendment")
    if p.commit_at is not None and state["status"] == "pledged":
        body = {"occurred_at": p.commit_at}
        steps += await _step(client, f"/v1/pledges/{pid}/commit", body, f"{pid} commitment")
    for line_id, body in p.donor_figures:
        if lines[line_id]["donor_reported"] is None:
            path = f"/v1/pledges/{pid}/lines/{line_id}/donor-figures"
            steps += await _step(client, path, body, f"{pid} donor figure")
    for line_id, body in p.receipts:
        if not any(r["reference"] == body["reference"] for r in lines[line_id]["receipts"]):
            path = f"/v1/pledges/{pid}/lines/{line_id}/receipts"
            steps += await _step(client, path, body, f"{pid} receipt")
    return made, steps


async def load(client: httpx.AsyncClient) -> Summary:
    """Post the needs, then make the pledges with their later steps.

    `client` carries the base URL and a key that may act for every organisation (a
    registry_admin key). Raises httpx.HTTPStatusError on any refusal other than "already
    there", or once the registry's data has not arrived in time.
    """
    posted = present = 0
    for need in NEEDS:
        new = await _load_need(client, need)
        posted += new
        present += not new
    made = already = changes = 0
    for pledge in PLEDGES:
        new, steps = await _load_pledge(client, pledge)
        made += new
        already += not new
        changes += steps
    return Summary(posted, present, made, already, changes)


def report(summary: Summary) -> list[str]:
    return [
        f"pledges: {summary.needs_posted} needs posted, {summary.needs_present} already present",
        f"pledges: {summary.pledges_made} pledges made, {summary.pledges_present} already"
        f" present, {summary.changes} later steps (amendments, commitments, figures, receipts)",
    ]


def main(argv: list[str] | None = None) -> int:
    return demo_client.main(argv, service="pledges", doc=__doc__, load=load, report=report)
