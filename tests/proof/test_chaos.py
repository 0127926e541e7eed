"""Faults under load on the real stack, each followed by the full audit (bench/loadgen_chaos.py).

Short in CI; `TWINAID_PROOF_SECONDS=60 TWINAID_PROOF_PAUSE=30` (what `make chaos` uses) for the
full size. Every scenario: every acknowledged write in the log, every event at every consumer,
nothing applied twice, no 500, chains intact, no read-model difference after replay.
"""

from __future__ import annotations

import os

import pytest

from bench import loadgen_chaos as chaos
from bench.loadgen_stack import Postgres

SECONDS = float(os.environ.get("TWINAID_PROOF_SECONDS", "8"))
PAUSE = float(os.environ.get("TWINAID_PROOF_PAUSE", "5"))
RATE = float(os.environ.get("TWINAID_PROOF_RATE", "10"))

FAULTS: dict[str, tuple[chaos.Fault, int]] = {
    "kills": (chaos.kills, 1),
    "broker-pause": (chaos.broker_pause(PAUSE), 1),
    "pg-restart": (chaos.pg_restart(3), 1),
    "replicas": (chaos.replicas, 2),
}


@pytest.mark.once
# kill-each-child runs `make run` itself: tests/e2e/test_self_healing.py is its CI counterpart
@pytest.mark.parametrize("name", chaos.PROOF_STACK_SCENARIOS)
async def test_under_load_and_fault_nothing_acknowledged_is_lost_or_applied_twice(
    name: str,
) -> None:
    fault, replicas = FAULTS[name]
    seconds = max(SECONDS, PAUSE + 5) if name == "broker-pause" else SECONDS
    r = await chaos.scenario(
        name, fault, pg=Postgres(), seconds=seconds, rate=RATE, replicas_n=replicas
    )
    assert r["acknowledged"] > 0, "the load acknowledged nothing"
    assert r["lost"] == [] and r["in_log"] == r["acknowledged"], r["lost"]
    assert r["missing_at_consumers"] == [], r["missing_at_consumers"]
    assert r["duplicates"] == 0 and r["duplicates_applied_by_consumers"] == 0
    assert r["answers_500"] == 0, r["unexpected"]
    assert r["replay"]["errors"] == {} and r["compare"]["errors"] == {}, r["replay"]["errors"]
    assert r["replay"]["chains_intact"]
    assert r["compare"]["differences"] == [], r["compare"]["differences"][:5]
