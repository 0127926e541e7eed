"""The event feed's window (shared/routes.py, GET /v1/events): a window that holds no instant
(recorded_to, exclusive, not after recorded_from) is a 422 naming both parameters, as a
report's reversed period is, never an empty page; `organisation` is documented as the
organisation that acted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared.auth import Role
from shared.testing import seal_everything
from tests.pledges.conftest import PledgesApi, assert_problem
from tests.pledges.test_reports import loaded


@pytest.mark.parametrize(
    ("recorded_from", "recorded_to"),
    [
        ("2024-03-02T00:00:00Z", "2024-03-01T00:00:00Z"),
        ("2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        ("2024-03-01T02:00:00+02:00", "2024-03-01T00:00:00Z"),  # the same instant
    ],
)
async def test_a_window_that_holds_no_instant_is_refused_naming_both_ends(
    api: PledgesApi, recorded_from: str, recorded_to: str
) -> None:
    answer = await api.client.get(
        "/v1/events",
        params={"recorded_from": recorded_from, "recorded_to": recorded_to},
        headers=await api.as_("twinaid", Role.AUDITOR),
    )
    problem = assert_problem(answer, 422)
    assert [p["name"] for p in problem["invalid_params"]] == [
        "query.recorded_from",
        "query.recorded_to",
    ], problem


async def test_a_window_in_order_reads_the_events_recorded_in_it(api: PledgesApi) -> None:
    await loaded(api)
    conn = await asyncpg.connect(api.url)
    try:
        assert await seal_everything(conn) > 0  # the feed shows the sealed log
    finally:
        await conn.close()
    now = datetime.now(UTC)
    window = {
        "recorded_from": (now - timedelta(hours=1)).isoformat(),
        "recorded_to": (now + timedelta(minutes=1)).isoformat(),
    }
    page = await api.get("/v1/events", reader="twinaid", role=Role.AUDITOR, **window)
    assert page["events"], page
    before = {
        "recorded_from": (now - timedelta(hours=2)).isoformat(),
        "recorded_to": (now - timedelta(hours=1)).isoformat(),
    }
    assert (await api.get("/v1/events", reader="twinaid", role=Role.AUDITOR, **before))[
        "events"
    ] == []


def test_the_feeds_organisation_filter_says_it_is_the_organisation_that_acted(
    api_document: dict[str, object],
) -> None:
    paths = api_document["paths"]
    assert isinstance(paths, dict)
    parameters = {p["name"]: p for p in paths["/v1/events"]["get"]["parameters"]}
    assert "organisation that acted" in parameters["organisation"]["description"]
    assert "exclusive" in parameters["recorded_to"]["description"]


@pytest.fixture
def api_document() -> dict[str, object]:
    from services.pledges.app import create_app
    from tests.conftest import settings_for

    document: dict[str, object] = create_app(settings_for("postgresql://x@127.0.0.1:1/x")).openapi()
    return document
