"""What a trace says of each convoy event (services/audit/trace.py `what`), read through the
audit's own models of shipments' events: every version shipments wrote (persons in clear in
version 1, sealed in version 2), fields it does not tell ignored, nothing for other events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.audit import trace
from shared.events import Metadata, RecordedEvent

pytestmark = pytest.mark.once  # pure Python

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SEALED = {"subject_id": "shipments-" + "0" * 32, "sealed": "AAAA", "personal": ["name"]}


def event(kind: str, data: dict[str, Any], version: int = 1) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type="convoy",
        stream_id="convoy-c1",
        stream_version=1,
        event_type=f"shipments.{kind}",
        schema_version=version,
        occurred_at=NOW,
        recorded_at=NOW,
        data={"convoy_id": "c1", "entry_id": "e1", **data},
        metadata=Metadata(),
    )


PLANNED = {"origin_id": "lille", "destination_id": "kharkiv", "carrier_id": "nord", "vehicles": []}
CASES = [
    (event("convoy-planned", PLANNED, 1), "lille -> kharkiv by nord"),
    (event("convoy-planned", {**PLANNED, "drivers": [SEALED]}, 2), "lille -> kharkiv by nord"),
    (
        event("manifest-line-loaded", {"quantity": "10", "unit": "pieces", "pledge_id": "p1",
                                       "line_id": "generators", "weight_kg": "5"}),
        "10 pieces of p1/generators",
    ),
    (
        event("convoy-dispatched", {"custody": {"organisation_id": "nord",
                                                "person": {"name": "Olena"}}}, 1),
        "held by nord (Olena)",
    ),
    (
        event("convoy-dispatched", {"custody": {"organisation_id": "nord", "person": SEALED}}, 2),
        f"held by nord ({SEALED['subject_id']})",
    ),
    (event("checkpoint-recorded", {"place": "Kraków"}), "Kraków"),
    (
        event("border-crossed", {"crossing_point": "Korczowa", "outcome": "cleared"}),
        "Korczowa: cleared",
    ),
    (
        event("custody-handed-off", {"from_party": {"name": "depot"},
                                     "to_party": {"organisation_id": "ukrposhta"}}, 2),
        "depot -> ukrposhta",
    ),
    (event("incident-reported", {"kind": "delay", "description": "queue"}), "delay: queue"),
    (event("convoy-arrived", {"place": "Kharkiv"}), "Kharkiv"),
    (event("convoy-arrived", {}), ""),
    (
        event("delivery-confirmed", {"confirmed_by": {"name": "Iryna", "role": "manager"}}, 1),
        "confirmed by Iryna (manager)",
    ),
    (
        event("delivery-confirmed", {"confirmed_by": {**SEALED, "role": "manager"}}, 2),
        f"confirmed by {SEALED['subject_id']} (manager)",
    ),
    (event("convoy-closed", {"outcome": "delivered"}), "delivered"),
    (event("convoy-cancelled", {"reason": "road closed", "released": []}), "road closed"),
]  # fmt: skip


@pytest.mark.parametrize(("stored", "said"), CASES)
def test_each_convoy_event_says_what_happened_on_the_road(stored: RecordedEvent, said: str) -> None:
    assert trace.what(stored) == said


def test_other_events_and_unreadable_ones_say_nothing() -> None:
    assert trace.what(event("manifest-line-unloaded", {"quantity": "1"})) == ""
    assert trace.what(event("checkpoint-recorded", {})) == ""  # no place: not told
    assert trace.what(event("convoy-planned", PLANNED, 3)) == ""  # a version unknown here
