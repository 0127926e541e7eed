"""Demo organisations and partnerships from the four articles in the design sources, over HTTP.

`python -m services.registry.demo --url http://127.0.0.1:8101 --key <registry_admin key>`.
Safe to re-run: every write carries an Idempotency-Key derived from its body, an organisation
or partnership that exists already (409) is fine, and a partnership is only moved along the
steps it has not made yet (read first with GET).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from typing import Any, NamedTuple

import httpx

from services.registry.demo.organisations import ORGANISATIONS, Org
from services.registry.demo.partnerships import PARTNERSHIPS, Partnership

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


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def idempotency_key(body: dict[str, Any]) -> str:
    # Tied to the body: a retry replays the first answer; edited demo data gets a new key
    # (and a 409 if the organisation exists already) instead of a reused-key error.
    return f"demo-organisation-{body['organisation_id']}-{_digest(body)}"


async def _post(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str
) -> httpx.Response:
    """POST `body` with `key` as its Idempotency-Key: a key tied to the body (as
    `idempotency_key`), so that a retry replays the first answer."""
    return await _send(client, "POST", url, json=body, headers={"Idempotency-Key": key})


def _refused(what: str, response: httpx.Response) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError(
        f"{what}: {response.status_code} {response.text}",
        request=response.request,
        response=response,
    )


async def _send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a 429 (the key's rate limit: nothing was done) is waited out as its
    Retry-After says, then sent again."""
    for _ in range(RATE_LIMITED_RETRIES):
        response = await client.request(method, url, **kwargs)
        if response.status_code != 429:
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def _replayed(response: httpx.Response) -> bool:
    return bool(response.headers.get("Idempotent-Replayed") == "true")


async def load_organisations(client: httpx.AsyncClient) -> tuple[int, int, int]:
    """Register every organisation; returns (newly registered, already present, present
    without coordinates and given them: `_locate`).

    Raises httpx.HTTPStatusError on any answer other than 201 or 409.
    """
    registered = present = located = 0
    for org in ORGANISATIONS:
        body = org.body()
        response = await _post(client, "/v1/organisations", body, idempotency_key(body))
        if response.status_code == 409:
            present += 1
            located += await _locate(client, org)
        elif _replayed(response):
            present += 1
        elif response.status_code == 201:
            registered += 1
        else:
            raise _refused(body["organisation_id"], response)
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
        raise _refused(oid, response)
    if response.json().get("coordinates") is not None:
        return False
    body = {"coordinates": org.coordinates, "reason": LOCATED_REASON}
    key = f"demo-location-{oid}-{_digest(body)}"
    corrected = await _post(client, f"/v1/organisations/{oid}/corrections", body, key)
    if corrected.status_code != 200:
        raise _refused(f"{oid} (coordinates)", corrected)
    return not _replayed(corrected)


async def _status(client: httpx.AsyncClient, partnership_id: str) -> str | None:
    response = await _send(client, "GET", f"/v1/partnerships/{partnership_id}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise _refused(partnership_id, response)
    status: str = response.json()["status"]
    return status


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
        key = f"demo-partnership-{pid}-{_digest(body)}"
        response = await _post(client, "/v1/partnerships", body, key)
        if response.status_code == 201:
            proposed = not _replayed(response)
        elif response.status_code != 409:  # 409: proposed meanwhile
            raise _refused(pid, response)
        status = await _status(client, pid)
        if status is None:
            raise _refused(f"{pid} (missing after its proposal)", response)
    changes = 0
    for step in p.history[1:]:
        if status not in FORWARD:
            return proposed, changes, True
        if FORWARD.index(status) >= FORWARD.index(step.to):
            continue
        body = p.transition(step)
        key = f"demo-partnership-{pid}-{step.to}-{_digest(body)}"
        response = await _post(client, f"/v1/partnerships/{pid}/transitions", body, key)
        if response.status_code == 200:
            changes += not _replayed(response)
            status = step.to
        elif response.status_code == 409:
            # made meanwhile, or refused for another reason (say an active twin): look again
            status = await _status(client, pid)
            if status in FORWARD and FORWARD.index(status) < FORWARD.index(step.to):
                raise _refused(f"{pid} -> {step.to}", response)
        else:
            raise _refused(f"{pid} -> {step.to}", response)
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


async def _load_from(url: str, key: str) -> Summary:
    async with httpx.AsyncClient(
        base_url=url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        return await load(client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.registry.demo", description=__doc__)
    parser.add_argument("--url", required=True, help="the registry API, http://host:port")
    parser.add_argument("--key", required=True, help="an API key with the registry_admin role")
    args = parser.parse_args(argv)
    try:
        summary = asyncio.run(_load_from(args.url, args.key))
    except httpx.HTTPError as exc:
        print(f"registry demo data failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"registry: {summary.organisations_registered} organisations registered,"
        f" {summary.organisations_present} already present"
        + (
            f", {summary.organisations_located} given their coordinates"
            if summary.organisations_located
            else ""
        )
    )
    print(
        f"registry: {summary.partnerships_proposed} partnerships proposed,"
        f" {summary.partnerships_present} already present,"
        f" {summary.status_changes} status changes"
    )
    if summary.left_alone:
        print(f"registry: suspended or ended since, left alone: {', '.join(summary.left_alone)}")
    return 0
