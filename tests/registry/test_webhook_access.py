"""What a webhook subscriber sees of a registry event: an event this code cannot read is seen
by no one (and logged), so it never stops the deliveries after it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.registry import webhook_access
from services.registry.events import STREAM_ORGANISATION
from shared.auth import Principal, Role
from shared.events import Metadata, RecordedEvent

pytestmark = pytest.mark.once  # pure Python

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
READER = Principal(key_id="k1", organisation="lille", roles=frozenset({Role.MEMBER}))


def _stored(data: dict[str, Any], version: int = 1) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type=STREAM_ORGANISATION,
        stream_id="organisation-bucha",
        stream_version=1,
        event_type="registry.organisation-registered",
        schema_version=version,
        occurred_at=NOW,
        recorded_at=NOW,
        data=data,
        metadata=Metadata(),
        position=1,
    )


async def test_an_event_this_code_cannot_read_is_seen_by_no_subscriber(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = _stored({"organisation_id": "bucha"}, version=7)
    seen = await webhook_access.seen(None, READER, bad)
    assert seen == webhook_access.NOTHING
    assert str(bad.event_id) in caplog.text
