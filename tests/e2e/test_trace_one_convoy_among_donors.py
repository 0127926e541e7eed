"""`twinaid audit trace` when one need has several pledges, carried by different convoys: the
need's correlation id reaches every pledge line and every convoy loading one, but the trace
of a convoy tells only its own road, its own pledges and their need, and the trace of a
pledge only the convoys carrying its lines. The need's trace tells them all."""

from __future__ import annotations

from typing import Any

from services.audit import trace
from tests.e2e.test_trace_whole_story import (
    FEEDS,
    NEED,
    PLEDGE,
    Story,
    seal,
    shipments_learn_the_lines,
    story,  # noqa: F401
)
from tests.pledges.conftest import GENERATORS_NEED, generators_pledge
from tests.shipments.conftest import entry

SECOND = "lille-generators-2"  # a second pledge answering the same need


async def two_pledges_on_two_convoys(story: Story) -> None:  # noqa: F811
    need = {**GENERATORS_NEED, "occurred_at": "2022-05-20T10:00:00+03:00"}
    await story.pledges.ok("/v1/needs", need, by="kharkiv", **{"X-Correlation-ID": NEED})
    for pledge_id, day in ((PLEDGE, 25), (SECOND, 26)):
        pledge = generators_pledge(
            pledge_id=pledge_id, commit=True, occurred_at=f"2022-05-{day}T10:00:00Z"
        )
        pledge["lines"][0] |= {"quantity": "10", "weight_kg": "1200"}
        await story.pledges.ok("/v1/pledges", pledge, by="lille")
    await shipments_learn_the_lines(story)
    api = story.shipments
    for convoy, pledge, place in (("c1", PLEDGE, "Kraków"), ("c2", SECOND, "Lublin")):
        await api.plan(convoy, reference=f"generators {convoy}")
        loaded = await api.load(
            convoy, manifest_line_id="m1", pledge_id=pledge, line_id="generators"
        )
        assert loaded.status_code == 201, loaded.text
        road = await api.entries(
            convoy,
            entry("dispatch", "2022-06-07T06:10:00+02:00", f"d-{convoy}"),
            entry("checkpoint", "2022-06-08T12:00:00+02:00", f"k-{convoy}", place=place),
        )
        assert road.status_code == 200, road.text
    await seal(api.url)


async def traced(story: Story, target: str) -> list[dict[str, Any]]:  # noqa: F811
    steps = await trace.trace(story.client, FEEDS, key=story.auditor, target=target)
    return [s.as_dict() for s in steps]


def records(steps: list[dict[str, Any]]) -> set[str]:
    return {s["stream_id"] for s in steps if s["stream_id"].startswith(("convoy-", "pledge-"))}


async def test_a_convoy_or_a_pledge_traced_tells_its_own_road_not_the_other_donors(
    story: Story,  # noqa: F811
) -> None:
    await two_pledges_on_two_convoys(story)

    c1 = await traced(story, "c1")
    assert records(c1) == {"convoy-c1", f"pledge-{PLEDGE}"}, records(c1)
    assert "Lublin" not in {s["what"] for s in c1}
    kinds = [s["event_type"] for s in c1]
    # its pledge and the need its line answers, then its road
    assert kinds[0] == "pledges.need-posted"
    assert "pledges.pledge-committed" in kinds and "shipments.checkpoint-recorded" in kinds

    for pledge, convoy, other in ((PLEDGE, "c1", "c2"), (SECOND, "c2", "c1")):
        steps = await traced(story, pledge)
        assert records(steps) == {f"convoy-{convoy}", f"pledge-{pledge}"}, (pledge, records(steps))
        assert f"convoy-{other}" not in {s["stream_id"] for s in steps}

    # the need's story is every donor's: both pledges, both roads
    need = await traced(story, NEED)
    assert records(need) == {"convoy-c1", "convoy-c2", f"pledge-{PLEDGE}", f"pledge-{SECOND}"}
    assert {"Kraków", "Lublin"} <= {s["what"] for s in need}
