"""A convoy's whole journey over HTTP on real PostgreSQL: plan, load, dispatch, checkpoints,
a border, a hand-off, an incident, arrival, proof of delivery, closing."""

from __future__ import annotations

import json

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry


async def test_a_medicine_convoy_goes_from_plan_to_a_partial_delivery_and_is_closed(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(
        pledge_id="chu-meds",
        line_id="antibiotics",
        donor_id="chu-lille",
        item="Amoxicillin 500 mg, boxes of 100",
        category="medicines",
        unit="boxes",
        quantity="400",
        weight_kg="2400",
        correlation_id="need-kharkiv-medicines",
    )
    planned = await api.plan()
    assert planned == {"convoy_id": "c1", "status": "planned", "version": 1}

    loaded = await api.load(
        manifest_line_id="m1", pledge_id="chu-meds", line_id="antibiotics", quantity="300"
    )
    assert loaded.status_code == 201, loaded.text
    assert loaded.json() == {
        "convoy_id": "c1",
        "status": "loading",
        "version": 2,
        "manifest_line_id": "m1",
        "quantity": "300",
        "weight_kg": "1800",
        "remaining_on_pledge_line": "100",
    }

    road = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "e-dispatch"),
        entry(
            "checkpoint",
            "2022-06-08T18:30:00+02:00",
            "e-wroclaw",
            place="Wrocław",
            coordinates={"lat": 51.107, "lon": 17.038},
        ),
        entry(
            "border_crossing",
            "2022-06-09T11:00:00+03:00",
            "e-border",
            crossing_point="Medyka - Shehyni",
            from_country="PL",
            to_country="UA",
            customs_document="UA-209-2022-118734",
            outcome="cleared",
        ),
        entry(
            "custody_handoff",
            "2022-06-10T09:00:00+03:00",
            "e-handoff",
            from_party={"organisation_id": "transports-nord"},
            to_party={
                "organisation_id": "ukrposhta",
                "person": {"name": "Ihor P.", "role": "driver"},
            },
        ),
        entry(
            "incident",
            "2022-06-10T14:00:00+03:00",
            "e-theft",
            incident="theft",
            description="Two boxes missing after a night stop near Poltava",
            lines=[{"manifest_line_id": "m1", "quantity": "2"}],
        ),
        entry("arrival", "2022-06-11T10:00:00+03:00", "e-arrival", place="Kharkiv central depot"),
    )
    assert road.status_code == 200, road.text
    assert road.json()["status"] == "arrived"
    assert road.json()["recorded"] == 6

    convoy = await api.convoy()
    assert convoy["status"] == "arrived"
    assert convoy["position"]["place"] == "Medyka - Shehyni"
    assert convoy["custody"]["organisation_id"] == "ukrposhta"
    line = convoy["manifest"][0]
    assert (line["lost"], line["in_transit"]) == ("2", "298")

    delivery = await api.client.post(
        "/v1/convoys/c1/delivery",
        json={
            "receiver": {"name": "Natalia Koval", "role": "head pharmacist"},
            "document": {"name": "receipt-c1.pdf", "sha256": "ab" * 32},
            "lines": [{"manifest_line_id": "m1", "received": "297", "damaged": "1"}],
            "occurred_at": "2022-06-11T12:00:00+03:00",
        },
        headers=await api.as_("kharkiv", Role.MEMBER),
    )
    assert delivery.status_code == 201, delivery.text
    assert delivery.json()["outcome"] == "partial"

    [confirmed] = await api.events("shipments.delivery-confirmed")
    # who signed is sealed in the event (their role in clear), opened for those who may see it
    sealed = confirmed.pop("confirmed_by")
    assert "Koval" not in json.dumps(sealed) and sealed["role"] == "head pharmacist"
    assert await api.reveal(sealed) == {
        "name": "Natalia Koval",
        "role": "head pharmacist",
        "subject_id": sealed["subject_id"],
        "erased": False,
    }
    assert confirmed == {
        "convoy_id": "c1",
        "recipient_id": "kharkiv",
        "origin_id": "lille",
        "carrier_id": "transports-nord",
        "document": {"name": "receipt-c1.pdf", "sha256": "ab" * 32},
        "lines": [
            {
                "manifest_line_id": "m1",
                "pledge_id": "chu-meds",
                "line_id": "antibiotics",
                "item": "Amoxicillin 500 mg, boxes of 100",
                "unit": "boxes",
                "loaded": "300",
                "received": "297",
                "damaged": "1",
                "short": "0",
                "lost": "2",
                "correlation_id": "need-kharkiv-medicines",
            }
        ],
    }

    closed = await api.client.post(
        "/v1/convoys/c1/close", json={}, headers=await api.as_("lille", Role.LOGISTICS)
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    events = await api.count()
    late = await api.entries(
        "c1", entry("checkpoint", "2022-06-10T08:00:00+03:00", "e-late", place="Poltava")
    )
    assert_problem(late, 409, "convoy-closed")
    resent = await api.entries(
        "c1",
        entry("arrival", "2022-06-11T10:00:00+03:00", "e-arrival", place="Kharkiv central depot"),
    )
    assert resent.status_code == 200, resent.text  # answered as before, even now
    assert resent.json()["already_recorded"] == 1
    assert await api.count() == events
