"""Demo convoys from the articles in the design sources (demo/data.py), over HTTP.

`python -m services.shipments.demo --url http://127.0.0.1:8103 --key <registry_admin key>`.
Runs after the registry and pledges demos. Pledge lines reach shipments asynchronously (pledges'
relay, the broker, this service's worker), so it first waits, up to a minute, for the lines it
draws on. A convoy whose lines never came is skipped and said so; with no pledge line at all it
loads nothing, says why, and exits 0.

Safe to re-run: it reads each convoy first and makes only the steps it lacks; writes carry an
Idempotency-Key derived from their body, and road entries carry fixed ids, so a re-sent batch is
answered as before and records nothing.
"""

from __future__ import annotations

import asyncio
from decimal import ROUND_FLOOR, Decimal
from typing import Any, NamedTuple

import httpx

from services.shipments.demo.data import CONVOYS, DemoConvoy, Load, Want
from shared import demo_client

WAIT_FOR_LINES = 60.0
SETTLED_AFTER = 5.0
POLL_EVERY = 1.0
WHOLE_UNITS = ("pieces", "boxes")


class Summary(NamedTuple):
    convoys_planned: int = 0
    convoys_present: int = 0
    lines_loaded: int = 0
    entries_recorded: int = 0
    entries_present: int = 0
    deliveries_confirmed: int = 0
    convoys_closed: int = 0
    skipped: tuple[str, ...] = ()

    def __add__(self, other: object) -> Summary:
        assert isinstance(other, Summary)
        return Summary(*(a + b for a, b in zip(self, other, strict=True)))  # type: ignore[operator]


class Skipped(Exception):
    """A convoy the demo cannot load: the reason is reported, the others go on."""


async def known_lines(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every pledge line shipments has heard of."""
    lines: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/pledge-lines", params=params)
        if response.status_code != 200:
            raise demo_client.refused("pledge lines", response)
        page = response.json()
        lines += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return lines


def find(want: Want, recipient: str, lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    for line in lines:
        if want.pledge_id is not None:
            if (line["pledge_id"], line["line_id"]) == (want.pledge_id, want.line_id):
                return line
        elif (
            line["donor_id"] in want.donors
            and line["recipient_id"] == recipient
            and line["status"] == "committed"
        ):
            return line
    return None


def _wanted(convoy: DemoConvoy) -> list[Want]:
    return [load.want for load in convoy.loads]


async def wait_for_lines(
    client: httpx.AsyncClient, *, wait: float, settled_after: float
) -> list[dict[str, Any]]:
    """Until every wanted line is known; or, once some came, until no new one came for
    `settled_after` seconds; or `wait` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    last_change, count = loop.time(), -1
    while True:
        lines = await known_lines(client)
        if all(find(w, c.plan["destination_id"], lines) for c in CONVOYS for w in _wanted(c)):
            return lines
        if len(lines) != count:
            last_change, count = loop.time(), len(lines)
        if (lines and loop.time() - last_change >= settled_after) or loop.time() >= deadline:
            return lines
        await asyncio.sleep(POLL_EVERY)


async def _convoy(client: httpx.AsyncClient, convoy_id: str) -> dict[str, Any] | None:
    return demo_client.found(convoy_id, await client.get(f"/v1/convoys/{convoy_id}"))


async def _post(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    what: str,
    *,
    ok: int = 200,
    keyed: bool = True,
) -> dict[str, Any]:
    headers = demo_client.keyed(what, path, body) if keyed else {}
    response = await client.post(path, json=body, headers=headers)
    if response.status_code != ok:
        raise demo_client.refused(what, response)
    answer: dict[str, Any] = response.json()
    return answer


def _quantity(load: Load, line: dict[str, Any], vehicle: dict[str, Any]) -> tuple[Decimal, Any]:
    """(quantity, weight_kg to send or None): the share asked for, within the vehicle's room."""
    loadable = Decimal(line["loadable"])
    quantity = Decimal(load.quantity) if load.quantity else loadable * load.share[0] / load.share[1]
    if line["weight_kg"] is not None:
        unit_weight = Decimal(line["weight_kg"]) / Decimal(line["quantity"])
    elif line["unit"] in ("kg", "tonnes"):
        unit_weight = Decimal(1000 if line["unit"] == "tonnes" else 1)
    else:
        unit_weight = Decimal(load.weight_kg_per_unit or "1")
    room = Decimal(vehicle["capacity_kg"]) - Decimal(vehicle["load_kg"])
    quantity = min(quantity, loadable, room / unit_weight)
    step = Decimal(1) if line["unit"] in WHOLE_UNITS else Decimal("0.001")
    quantity = quantity.quantize(step, rounding=ROUND_FLOOR)
    given_weight = (
        None
        if line["weight_kg"] is not None or line["unit"] in ("kg", "tonnes")
        else (str(quantity * unit_weight))
    )
    return quantity, given_weight


async def _load_lines(
    client: httpx.AsyncClient, convoy: DemoConvoy, lines: list[dict[str, Any]]
) -> int:
    loaded = 0
    cid = convoy.convoy_id
    for load in convoy.loads:
        state = await _convoy(client, cid)
        assert state is not None
        if any(m["manifest_line_id"] == load.manifest_line_id for m in state["manifest"]):
            continue
        found = find(load.want, convoy.plan["destination_id"], lines)
        assert found is not None
        response = await client.get(f"/v1/pledge-lines/{found['pledge_id']}/{found['line_id']}")
        if response.status_code != 200:
            raise demo_client.refused(f"pledge line for {cid}", response)
        vehicle = next(v for v in state["vehicles"] if v["registration"] == load.vehicle)
        quantity, weight = _quantity(load, response.json(), vehicle)
        if quantity <= 0:
            raise Skipped(f"nothing left to load from {found['pledge_id']}/{found['line_id']}")
        body = {
            "manifest_line_id": load.manifest_line_id,
            "pledge_id": found["pledge_id"],
            "line_id": found["line_id"],
            "quantity": format(quantity.normalize(), "f"),
            "vehicle": load.vehicle,
            "occurred_at": convoy.plan["occurred_at"],
            **({"weight_kg": weight} if weight else {}),
        }
        await _post(client, f"/v1/convoys/{cid}/manifest", body, f"{cid} load", ok=201)
        loaded += 1
    return loaded


def _delivery(convoy: DemoConvoy, state: dict[str, Any]) -> dict[str, Any]:
    assert convoy.delivery is not None
    damaged: dict[str, str] = convoy.delivery.get("damaged", {})
    lines = []
    for m in state["manifest"]:
        if m["state"] != "loaded":
            continue
        expected = Decimal(m["quantity"]) - Decimal(m["lost"])
        broken = Decimal(damaged.get(m["manifest_line_id"], "0"))
        received = format((expected - broken).normalize(), "f")
        lines.append(
            {
                "manifest_line_id": m["manifest_line_id"],
                "received": received,
                "damaged": format(broken.normalize(), "f"),
                "short": "0",
            }
        )
    extra = {k: v for k, v in convoy.delivery.items() if k != "damaged"}
    return {**extra, "lines": lines}


async def load_convoy(
    client: httpx.AsyncClient, convoy: DemoConvoy, lines: list[dict[str, Any]]
) -> Summary:
    """Make the steps `convoy` lacks. Raises Skipped when its pledge lines are not known."""
    cid = convoy.convoy_id
    state = await _convoy(client, cid)
    planned = 0
    if state is None:
        missing = [w for w in _wanted(convoy) if not find(w, convoy.plan["destination_id"], lines)]
        if missing:
            raise Skipped(_missing(missing, convoy.plan["destination_id"]))
        await _post(client, "/v1/convoys", convoy.plan, f"{cid} plan", ok=201)
        planned = 1
        state = await _convoy(client, cid)
        assert state is not None
    loaded = 0
    if state["status"] in ("planned", "loading"):
        loaded = await _load_lines(client, convoy, lines)
    recorded = present = delivered = closed = 0
    if convoy.entries:
        # no Idempotency-Key: the entry ids are the road's own, and the answer then says
        # which entries were new this time
        body = {"entries": list(convoy.entries)}
        answer = await _post(client, f"/v1/convoys/{cid}/entries", body, f"{cid} road", keyed=False)
        recorded, present = answer["recorded"], answer["already_recorded"]
    state = await _convoy(client, cid)
    assert state is not None
    if convoy.delivery is not None and state["status"] == "arrived":
        body = _delivery(convoy, state)
        await _post(client, f"/v1/convoys/{cid}/delivery", body, f"{cid} delivery", ok=201)
        delivered = 1
        state = await _convoy(client, cid)
        assert state is not None
    if convoy.close is not None and state["status"] == "delivered":
        await _post(client, f"/v1/convoys/{cid}/close", convoy.close, f"{cid} close")
        closed = 1
    return Summary(planned, 1 - planned, loaded, recorded, present, delivered, closed)


def _missing(wants: list[Want], recipient: str) -> str:
    parts = []
    for w in wants:
        if w.pledge_id is not None:
            parts.append(f"pledge line {w.pledge_id}/{w.line_id}")
        else:
            parts.append(f"a committed in-kind line from {' or '.join(w.donors)} to {recipient}")
    return "not known to shipments: " + ", ".join(dict.fromkeys(parts))


async def load(
    client: httpx.AsyncClient, *, wait: float = WAIT_FOR_LINES, settled_after: float = SETTLED_AFTER
) -> Summary:
    """Load every demo convoy whose pledge lines are known.

    `client` carries the base URL and a key that may act for every organisation involved (a
    registry_admin key). Raises httpx.HTTPStatusError on any refusal the demo cannot take as
    "already done"."""
    lines = await wait_for_lines(client, wait=wait, settled_after=settled_after)
    total = Summary()
    for convoy in CONVOYS:
        try:
            total += await load_convoy(client, convoy, lines)
        except Skipped as reason:
            total += Summary(skipped=(f"{convoy.convoy_id}: {reason}",))
    return total


def report(summary: Summary) -> list[str]:
    if summary.convoys_planned + summary.convoys_present == 0:
        return [
            "shipments: no demo convoy loaded: the pledge lines they carry never reached"
            " shipments (is the pledges demo loaded, and are both workers running?)",
            *(f"shipments: skipped {s}" for s in summary.skipped),
        ]
    return [
        f"shipments: {summary.convoys_planned} convoys planned, {summary.convoys_present}"
        f" already present, {summary.lines_loaded} manifest lines loaded",
        f"shipments: {summary.entries_recorded} road entries recorded"
        f" ({summary.entries_present} already there), {summary.deliveries_confirmed}"
        f" deliveries confirmed, {summary.convoys_closed} convoys closed",
        *(f"shipments: skipped {s}" for s in summary.skipped),
    ]


def main(argv: list[str] | None = None) -> int:
    return demo_client.main(
        argv, service="shipments", doc=__doc__, load=load, report=report, timeout=15
    )
