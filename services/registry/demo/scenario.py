"""Demo organisations and partnerships from the four articles in the design sources, over HTTP.

`python -m services.registry.demo --url http://127.0.0.1:8101 --key <registry_admin key>`.
Safe to re-run: every write carries an Idempotency-Key derived from its body, an organisation
or partnership that exists already (409) is fine, and a partnership is only moved along the
steps it has not made yet (read first with GET).
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import httpx

from services.registry.demo.organisations import ORGANISATIONS, Org
from services.registry.demo.partnerships import PARTNERSHIPS, Partnership
from shared import demo_client

# Forward order; a partnership suspended or ended since is not the demo's to undo.
FORWARD = ("proposed", "under_discussion", "agreed", "signed")


class Summary(NamedTuple):
    organisations_registered: int
    organisations_present: int
    partnerships_proposed: int
    partnerships_present: int
    status_changes: int
    left_alone: tuple[str, ...]  # suspended or ended since: not moved
    # present without coordinates (registered by a demo that had none): given them now
    organisations_located: int = 0


# a 429 is waited out this many times before it counts as a refusal
RATE_LIMITED_RETRIES = 10


def idempotency_key(body: dict[str, Any]) -> str:
    """An organisation's registration key (demo_client.key)."""
    return demo_client.key("organisation", body["organisation_id"], body)


async def _post(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], kind: str, ident: str
) -> httpx.Response:
    """POST `body` with a key of `kind` tied to it (demo_client.key), so that a retry replays
    the first answer."""
    return await _send(client, "POST", url, json=body, headers=demo_client.keyed(kind, ident, body))


async def _send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a 429 (the key's rate limit: nothing was done) is waited out as its
    Retry-After says, then sent again."""
    for _ in range(RATE_LIMITED_RETRIES):
        response = await client.request(method, url, **kwargs)
        if response.status_code != 429:
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    return response


async def load_organisations(client: httpx.AsyncClient) -> tuple[int, int, int]:
    """Register every organisation; returns (newly registered, already present, present
    without coordinates and given them: `_locate`).

    Raises httpx.HTTPStatusError on any answer other than 201 or 409.
    """
    registered = present = located = 0
    for org in ORGANISATIONS:
        body = org.body()
        response = await _post(
            client, "/v1/organisations", body, "organisation", body["organisation_id"]
        )
        if response.status_code == 409:
            present += 1
            located += await _locate(client, org)
        elif demo_client.replayed(response):
            present += 1
        elif response.status_code == 201:
            registered += 1
        else:
            raise demo_client.refused(body["organisation_id"], response)
    return registered, present, located


LOCATED_REASON = "demo data: the centre of the town it is in, from the design sources"


async def _locate(client: httpx.AsyncClient, org: Org) -> bool:
    """An organisation registered by an earlier demo without coordinates gets them (a
    correction); True if it did. One that has coordinates, whatever they are, is left alone,
    and so is a 409 that was not this organisation (a namesake: 404 here)."""
    oid = org.organisation_id
    response = await _send(client, "GET", f"/v1/organisations/{oid}")
    if response.status_code == 404 or org.coordinates is None:
        return False
    if response.status_code != 200:
        raise demo_client.refused(oid, response)
    if response.json().get("coordinates") is not None:
        return False
    body = {"coordinates": org.coordinates, "reason": LOCATED_REASON}
    corrected = await _post(client, f"/v1/organisations/{oid}/corrections", body, "location", oid)
    if corrected.status_code != 200:
        raise demo_client.refused(f"{oid} (coordinates)", corrected)
    return not demo_client.replayed(corrected)


async def _status(client: httpx.AsyncClient, partnership_id: str) -> str | None:
    response = await _send(client, "GET", f"/v1/partnerships/{partnership_id}")
    partnership = demo_client.found(partnership_id, response)
    return None if partnership is None else str(partnership["status"])


async def _load_partnership(client: httpx.AsyncClient, p: Partnership) -> tuple[bool, int, bool]:
    """Propose `p` unless it exists, then make the steps it has not made yet.

    Returns (proposed now, status changes made now, left alone). Raises httpx.HTTPStatusError
    on an answer the demo cannot take as "already done".
    """
    pid = p.partnership_id
    proposed = False
    status = await _status(client, pid)
    if status is None:
        body = p.proposal()
        response = await _post(client, "/v1/partnerships", body, "partnership", pid)
        if response.status_code == 201:
            proposed = not demo_client.replayed(response)
        elif response.status_code != 409:  # 409: proposed meanwhile
            raise demo_client.refused(pid, response)
        status = await _status(client, pid)
        if status is None:
            raise demo_client.refused(f"{pid} (missing after its proposal)", response)
    changes = 0
    for step in p.history[1:]:
        if status not in FORWARD:
            return proposed, changes, True
        if FORWARD.index(status) >= FORWARD.index(step.to):
            continue
        body = p.transition(step)
        path = f"/v1/partnerships/{pid}/transitions"
        response = await _post(client, path, body, "partnership", f"{pid}-{step.to}")
        if response.status_code == 200:
            changes += not demo_client.replayed(response)
            status = step.to
        elif response.status_code == 409:
            # made meanwhile, or refused for another reason (say an active twin): look again
            status = await _status(client, pid)
            if status in FORWARD and FORWARD.index(status) < FORWARD.index(step.to):
                raise demo_client.refused(f"{pid} -> {step.to}", response)
        else:
            raise demo_client.refused(f"{pid} -> {step.to}", response)
    return proposed, changes, status not in FORWARD


async def load(client: httpx.AsyncClient) -> Summary:
    """Register the organisations, then the partnerships with their histories.

    `client` carries the base URL and a registry_admin key. Raises httpx.HTTPStatusError on any
    refusal other than "already there".
    """
    registered, present, located = await load_organisations(client)
    proposed = already = changes = 0
    left_alone: list[str] = []
    for partnership in PARTNERSHIPS:
        new, moved, left = await _load_partnership(client, partnership)
        proposed += new
        already += not new
        changes += moved
        if left:
            left_alone.append(partnership.partnership_id)
    return Summary(registered, present, proposed, already, changes, tuple(left_alone), located)


def report(summary: Summary) -> list[str]:
    located = summary.organisations_located
    return [
        f"registry: {summary.organisations_registered} organisations registered,"
        f" {summary.organisations_present} already present"
        + (f", {located} given their coordinates" if located else ""),
        f"registry: {summary.partnerships_proposed} partnerships proposed,"
        f" {summary.partnerships_present} already present,"
        f" {summary.status_changes} status changes",
        *(
            [f"registry: suspended or ended since, left alone: {', '.join(summary.left_alone)}"]
            if summary.left_alone
            else []
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    return demo_client.main(argv, service="registry", doc=__doc__, load=load, report=report)
