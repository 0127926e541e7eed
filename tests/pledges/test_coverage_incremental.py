"""A need's coverage is kept from its lines' shares (each line's part, the difference added when
the line changes): after any sequence of pledges, commitments, withdrawals, amendments, money
and goods received, need revisions and closings, the figures equal those summed again over
every line (domain.coverage), and a rebuild gives the same rows. Pledges to one need share its
lock: they run side by side, and a closing still cuts them off."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import services.pledges as service_package
from services.pledges import domain, projections, subscriptions
from services.pledges.projections.needs import add_changes, line_contribution
from shared import projections as proj
from tests.pledges.conftest import PledgesApi, incoming, loading
from tests.pledges.test_rebuild import dump

KG_NEED = {
    "need_id": "flour",
    "kind": "item",
    "category": "food",
    "description": "Flour for the bakeries",
    "quantity": "900",
    "unit": "kg",
    "priority": "critical",
}
MONEY_NEED = {
    "need_id": "fuel",
    "kind": "money",
    "category": "fuel",
    "description": "Fuel for the generators",
    "amount": 500_000,
    "currency": "EUR",
    "priority": "normal",
}
UPGRADE = Path(service_package.__file__).parent / "migrations" / "pledges_0002_line_shares.sql"
FIGURES = ("pledged", "committed", "delivered", "gap", "status")


# --- the domain: shares added up as lines change equal the coverage summed at once ---------

statuses = st.sampled_from(["pledged", "committed", "partly_fulfilled", "fulfilled", "withdrawn"])
sizes = st.decimals(min_value=0, max_value=10_000, places=3)
units = st.sampled_from(["kg", "tonnes"])
line_states = st.tuples(statuses, sizes, sizes, units)


@pytest.mark.once
@given(
    target=st.decimals(min_value=1, max_value=20_000, places=2),
    need_unit=units,
    history=st.lists(st.tuples(st.integers(0, 5), line_states), max_size=40),
    state=st.sampled_from(["active", "closed", "cancelled"]),
)
def test_shares_kept_as_lines_change_sum_to_the_coverage(
    target: Decimal,
    need_unit: str,
    history: list[tuple[int, tuple[str, Decimal, Decimal, str]]],
    state: str,
) -> None:
    lines: dict[int, domain.Contribution] = {}
    kept: dict[int, domain.Share] = {}
    sums = domain.Share()
    for index, (status, size, delivered, unit) in history:
        line = domain.Contribution(status, size, delivered, unit)
        part = domain.share(line, unit=need_unit)
        sums += part - kept.get(index, domain.Share())
        lines[index], kept[index] = line, part
    whole = domain.coverage(
        target=target, unit=need_unit, need_state=state, contributions=lines.values()
    )
    assert domain.summarise(target=target, need_state=state, sums=sums) == whole


# --- the read model, through the API and the consumer --------------------------------------


async def recomputed(conn: asyncpg.Connection, need_id: str) -> tuple[Any, ...]:
    """The need's figures summed again over every line that answers it."""
    need = await conn.fetchrow("SELECT target, unit, state FROM needs WHERE need_id = $1", need_id)
    rows = await conn.fetch(
        "SELECT l.unit, l.quantity, l.amount, l.delivered, l.received, p.status"
        " FROM pledge_lines l JOIN pledges p USING (pledge_id) WHERE l.need_id = $1",
        need_id,
    )
    cov = domain.coverage(
        target=need["target"],
        unit=need["unit"],
        need_state=need["state"],
        contributions=[line_contribution(r) for r in rows],
    )
    return (cov.pledged, cov.committed, cov.delivered, cov.gap, cov.status)


async def kept(conn: asyncpg.Connection, need_id: str) -> tuple[Any, ...]:
    row = await conn.fetchrow(f"SELECT {', '.join(FIGURES)} FROM needs WHERE need_id = $1", need_id)
    return tuple(row)


class Flow:
    """Random writes to the two needs, through the API (refusals are part of the game)."""

    def __init__(self, api: PledgesApi, conn: asyncpg.Connection, rng: random.Random) -> None:
        self.api, self.conn, self.rng = api, conn, rng
        self.pledges: dict[str, list[dict[str, Any]]] = {}
        self.n = 0

    def _next(self, what: str) -> str:
        self.n += 1
        return f"{what}-{self.n}"

    def _line(self, i: int) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.4:
            return {
                "line_id": f"l{i}",
                "kind": "money",
                "need_id": "fuel",
                "item": "Fuel",
                "category": "fuel",
                "amount": rng.randint(1, 200_000),
                "currency": "EUR",
            }
        unit = rng.choice(["kg", "tonnes"])
        quantity = str(rng.randint(1, 400)) if unit == "kg" else f"{rng.randint(1, 900) / 1000:.3f}"
        return {
            "line_id": f"l{i}",
            "kind": "in_kind",
            "need_id": "flour",
            "item": "Flour",
            "category": "food",
            "quantity": quantity,
            "unit": unit,
        }

    async def make(self) -> None:
        pledge_id = self._next("p")
        lines = [self._line(i) for i in range(self.rng.randint(1, 3))]
        body = {
            "pledge_id": pledge_id,
            "recipient_id": "kharkiv",
            "lines": lines,
            "commit": self.rng.random() < 0.3,
        }
        if (await self.api.post("/v1/pledges", body, by="lille")).status_code == 201:
            self.pledges[pledge_id] = lines

    def _pick(self) -> tuple[str, dict[str, Any]] | None:
        if not self.pledges:
            return None
        pledge_id = self.rng.choice(sorted(self.pledges))
        return pledge_id, self.rng.choice(self.pledges[pledge_id])

    async def commit(self) -> None:
        if picked := self._pick():
            await self.api.post(f"/v1/pledges/{picked[0]}/commit", {}, by="lille")

    async def withdraw(self) -> None:
        if picked := self._pick():
            await self.api.post(
                f"/v1/pledges/{picked[0]}/withdraw", {"reason": "plans changed"}, by="lille"
            )

    async def amend(self) -> None:
        if not (picked := self._pick()):
            return
        pledge_id, line = picked
        change: dict[str, Any] = (
            {"amount": self.rng.randint(1, 200_000)}
            if line["kind"] == "money"
            else {"quantity": str(self.rng.randint(1, 500))}
            if line["unit"] == "kg"
            else {"quantity": f"{self.rng.randint(1, 900) / 1000:.3f}"}
        )
        await self.api.post(
            f"/v1/pledges/{pledge_id}/lines/{line['line_id']}/amendments",
            {**change, "reason": "a truck more"},
            by="lille",
        )

    async def receive(self) -> None:
        if not (picked := self._pick()) or picked[1]["kind"] != "money":
            return
        pledge_id, line = picked
        await self.api.post(
            f"/v1/pledges/{pledge_id}/lines/{line['line_id']}/receipts",
            {
                "amount": self.rng.randint(1, 50_000),
                "currency": "EUR",
                "received_on": "2023-03-15",
                "reference": self._next("transfer"),
            },
            by="kharkiv",
        )

    async def deliver(self) -> None:
        if not (picked := self._pick()) or picked[1]["kind"] != "in_kind":
            return
        pledge_id, line = picked
        received = "1" if line["unit"] == "kg" else "0.001"
        convoy = self._next("convoy")
        event = incoming(
            "shipments",
            "shipments.delivery-confirmed",
            {
                "convoy_id": convoy,
                "recipient_id": "kharkiv",
                "origin_id": "lille",
                "carrier_id": "lille",
                "lines": [
                    {
                        "manifest_line_id": "m1",
                        "pledge_id": pledge_id,
                        "line_id": line["line_id"],
                        "item": "Flour",
                        "unit": line["unit"],
                        "loaded": received,
                        "received": received,
                        "damaged": "0",
                        "short": "0",
                        "lost": "0",
                    }
                ],
            },
            stream_id=f"convoy-{convoy}",
        )
        try:
            async with self.conn.transaction():
                for loaded in loading(event):
                    await subscriptions.manifest_line_loaded(self.conn, loaded)
                await subscriptions.delivery_confirmed(self.conn, event)
        except domain.UnusableDelivery:
            pass  # not committed, withdrawn, or more than remains: the consumer parks it

    async def revise(self) -> None:
        need, change = self.rng.choice(
            [
                ("flour", {"quantity": str(self.rng.randint(1, 2_000))}),
                ("fuel", {"amount": self.rng.randint(1, 900_000)}),
            ]
        )
        await self.api.post(
            f"/v1/needs/{need}/revisions", {**change, "reason": "the winter"}, by="kharkiv"
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_kept_figures_equal_a_recomputation_after_any_sequence(
    api: PledgesApi, seed: int
) -> None:
    await api.ok("/v1/needs", KG_NEED, by="kharkiv")
    await api.ok("/v1/needs", MONEY_NEED, by="kharkiv")
    conn = await asyncpg.connect(api.url)
    try:
        flow = Flow(api, conn, random.Random(seed))
        steps = [flow.make] * 4 + [
            flow.commit,
            flow.commit,
            flow.withdraw,
            flow.amend,
            flow.amend,
            flow.receive,
            flow.receive,
            flow.deliver,
            flow.deliver,
            flow.revise,
        ]
        for _ in range(45):
            await flow.rng.choice(steps)()
            for need_id in ("flour", "fuel"):
                assert await kept(conn, need_id) == await recomputed(conn, need_id)
        await api.ok("/v1/needs/flour/close", {"reason": "enough"}, by="kharkiv")
        await flow.make()  # refused: the need is closed
        for _ in range(10):
            await flow.rng.choice(steps[4:])()
        figures = {n: await kept(conn, n) for n in ("flour", "fuel")}
        for need_id in figures:
            assert figures[need_id] == await recomputed(conn, need_id)
        assert figures["flour"][-1] == "closed"
        assert len(flow.pledges) > 5
        before = await dump(conn)
        await proj.rebuild(conn, projections.ALL)
        assert await dump(conn) == before
        # the upgrade gives lines recorded before it the shares the projection gives them
        await conn.execute("UPDATE pledge_lines SET share_pledged = 7, share_committed = 7")
        await conn.execute(UPGRADE.read_text())
        assert await dump(conn) == before
    finally:
        await conn.close()


async def test_pledges_to_one_need_run_side_by_side_and_a_closing_cuts_them_off(
    api: PledgesApi,
) -> None:
    """Many donors pledging to one need at once, and its closing in the middle: no pledge is
    recorded after the closing, and the figures equal the lines summed again."""
    await api.ok("/v1/needs", KG_NEED, by="kharkiv")
    statuses: list[int] = []

    async def pledge(i: int) -> None:
        line = {
            "line_id": "l1",
            "kind": "in_kind",
            "need_id": "flour",
            "item": "Flour",
            "category": "food",
            "quantity": str(i % 7 + 1),
            "unit": "kg" if i % 3 else "tonnes",
        }
        body = {"pledge_id": f"hot-{i}", "recipient_id": "kharkiv", "lines": [line]}
        statuses.append((await api.post("/v1/pledges", body, by="lille")).status_code)

    async def close() -> None:
        while len(statuses) < 3:  # some pledges recorded, the others still under way
            await asyncio.sleep(0.001)
        await api.ok("/v1/needs/flour/close", {"reason": "enough"}, by="kharkiv")

    await asyncio.gather(*(pledge(i) for i in range(60)), close())
    assert set(statuses) <= {201, 409} and 201 in statuses
    rows = await api.fetch(
        "SELECT e.stream_id, e.event_type, e.id FROM events e"
        " WHERE e.event_type IN ('pledges.pledge-made', 'pledges.need-closed') ORDER BY e.id"
    )
    [closed] = [r["id"] for r in rows if r["event_type"] == "pledges.need-closed"]
    assert all(r["id"] < closed for r in rows if r["event_type"] == "pledges.pledge-made")
    made = sum(1 for r in rows if r["event_type"] == "pledges.pledge-made")
    assert made == statuses.count(201)
    conn = await asyncpg.connect(api.url)
    try:
        assert await kept(conn, "flour") == await recomputed(conn, "flour")
        assert (await kept(conn, "flour"))[-1] == "closed"
    finally:
        await conn.close()


async def test_the_statement_adding_a_change_figures_as_the_domain_does(api: PledgesApi) -> None:
    """A change added to a need's sums leaves the gap and status domain.summarise gives."""
    conn = await asyncpg.connect(api.url)
    cases = [
        (target, state, pledged, change)
        for target in (Decimal("100"), Decimal("0.5"))
        for state in ("active", "closed", "cancelled")
        for pledged in (Decimal(0), Decimal("0.25"), Decimal("100"))
        for change in (Decimal("0.25"), Decimal("-0.25"), Decimal("99.75"))
        if pledged + change >= 0
    ]
    try:
        for i, (target, state, pledged, change) in enumerate(cases):
            need_id = f"n{i}"
            await conn.execute(
                "INSERT INTO needs (need_id, recipient_id, kind, category, description, target,"
                " priority, state, status, gap, pledged, posted_at, changed_at, version)"
                " VALUES ($1, 'kharkiv', 'item', 'food', 'd', $2, 'normal', $3, 'open', 0, $4,"
                " now(), now(), 1)",
                need_id,
                target,
                state,
                pledged,
            )
            await add_changes(conn, {need_id: domain.Share(pledged=change)})
            sums = domain.Share(pledged=pledged + change)
            want = domain.summarise(target=target, need_state=state, sums=sums)
            row = await kept(conn, need_id)
            assert row == (want.pledged, want.committed, want.delivered, want.gap, want.status)
    finally:
        await conn.close()
