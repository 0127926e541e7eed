"""Consumed facts are bounded (issue 17 point 3): the published schemas bound every string and
list an upstream's API bounds, never below what the API accepts, and a consumer parks an
authentic event whose field exceeds its bound instead of storing it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from services.pledges import domain as pledges_domain
from services.pledges import events as pledges_events
from services.pledges import requests as pledges_requests
from services.registry import events as registry_events
from services.registry import requests as registry_requests
from services.shipments import events as shipments_events
from services.shipments import requests as shipments_requests
from shared import published
from tests.shared.test_consumer import Rig
from tests.shared.test_consumer_trust import (
    REGISTRY_KEY,
    inbox,
    organisation,
    quarantined,
    running,
    send,
    settled,
    trust_rig,
)

SERVICES = Path(__file__).resolve().parents[2] / "services"

# (request model, event model written from it): every bound the request sets on a field must
# be in the event's published schema for the field of the same name, at least as large.
PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (registry_requests.OrganisationIn, registry_events.OrganisationRegistered),
    (registry_requests.RenameIn, registry_events.OrganisationRenamed),
    (registry_requests.AliasIn, registry_events.OrganisationAliasAdded),
    (registry_requests.ContactsIn, registry_events.OrganisationContactsChanged),
    (registry_requests.ContactIn, registry_events.Contact),
    (registry_requests.EvidenceIn, registry_events.Evidence),
    (registry_requests.PartnershipIn, registry_events.PartnershipProposed),
    (pledges_requests.ContactIn, pledges_events.Contact),
    (pledges_requests.NeedIn, pledges_events.NeedPosted),
    (pledges_requests.EndIn, pledges_events.NeedClosed),
    (pledges_requests.EndIn, pledges_events.NeedCancelled),
    (pledges_requests.EndIn, pledges_events.PledgeWithdrawn),
    (pledges_requests.LineIn, pledges_events.Line),
    (pledges_requests.PledgeIn, pledges_events.PledgeMade),
    (pledges_requests.AmendIn, pledges_events.PledgeLineAmended),
    (pledges_requests.ReceiptIn, pledges_events.MoneyReceived),
    (pledges_requests.DonorFigureIn, pledges_events.DonorFigureReported),
    (shipments_requests.ConvoyIn, shipments_events.ConvoyPlanned),
    (shipments_requests.VehicleIn, shipments_events.Vehicle),
    (shipments_requests.DriverIn, shipments_events.Driver),
    (shipments_requests.PersonIn, shipments_events.Person),
    (shipments_requests.PartyIn, shipments_events.Party),
    (shipments_requests.LoadIn, shipments_events.ManifestLineLoaded),
    (shipments_requests.UnloadIn, shipments_events.ManifestLineUnloaded),
    (shipments_requests.CancelIn, shipments_events.ConvoyCancelled),
    (shipments_requests.CloseIn, shipments_events.ConvoyClosed),
    (shipments_requests.CheckpointIn, shipments_events.CheckpointRecorded),
    (shipments_requests.BorderCrossingIn, shipments_events.BorderCrossed),
    (shipments_requests.IncidentIn, shipments_events.IncidentReported),
    (shipments_requests.ArrivalIn, shipments_events.ConvoyArrived),
    (shipments_requests.AffectedLineIn, shipments_events.AffectedLine),
    (shipments_requests.ReceiverIn, shipments_events.ConfirmedBy),
    (shipments_requests.DocumentIn, shipments_events.Document),
    (shipments_requests.DeliveredLineIn, shipments_events.DeliveredLine),
    (shipments_requests.DeliveryIn, shipments_events.DeliveryConfirmed),
]


def _bounds(prop: dict[str, Any]) -> dict[str, int]:
    """The length bounds of a property: maxLength of its text (or of its list's items) and
    maxItems of its list, through `anyOf` (an optional field)."""
    found: dict[str, int] = {}
    for shape in [prop, *prop.get("anyOf", [])]:
        if "maxLength" in shape:
            found["maxLength"] = shape["maxLength"]
        if "maxItems" in shape:
            found["maxItems"] = shape["maxItems"]
        items = shape.get("items", {})
        if "maxLength" in items:
            found["itemsMaxLength"] = items["maxLength"]
    return found


def _fixed_length(prop: dict[str, Any]) -> bool:
    return any(
        re.fullmatch(r"\^\[[^\]]+\]\{\d+\}\$", shape.get("pattern", ""))
        for shape in [prop, *prop.get("anyOf", [])]
    )


@pytest.mark.parametrize(("request_model", "event_model"), PAIRS, ids=lambda m: m.__name__)
def test_the_events_bound_every_field_the_api_bounds_never_below_it(
    request_model: type[BaseModel], event_model: type[BaseModel]
) -> None:
    asked = request_model.model_json_schema()["properties"]
    written = event_model.model_json_schema()["properties"]
    compared = 0
    for name, prop in asked.items():
        if name not in written:
            continue
        event_bounds = _bounds(written[name])
        for key, limit in _bounds(prop).items():
            compared += 1
            if key == "maxLength" and _fixed_length(written[name]):
                continue  # a code such as a currency: its pattern fixes the length
            assert key in event_bounds, f"{event_model.__name__}.{name} has no {key}"
            assert event_bounds[key] >= limit, (
                f"{event_model.__name__}.{name}: {key} {event_bounds[key]} refuses what"
                f" {request_model.__name__} accepts ({limit})"
            )
    assert compared > 0, "the pair shares no bounded field: a wrong pair"


def test_the_pledges_line_bound_is_the_domain_limit() -> None:
    assert pledges_events.MAX_LINES == pledges_domain.MAX_LINES


def test_the_published_validator_refuses_each_oversize_field_with_the_real_schemas() -> None:
    registry = published.Contract(SERVICES / "registry" / "schemas")
    shipments = published.Contract(SERVICES / "shipments" / "schemas")
    org = {"organisation_id": "lviv", "name": "Lviv", "kind": "municipality", "country": "UA"}
    event = registry_events.ORGANISATION_REGISTERED
    assert registry.problem(event, 1, org) is None
    assert registry.problem(event, 1, {**org, "name": "x" * 200}) is None
    assert registry.problem(event, 1, {**org, "name": "x" * 10_000}) == (
        "data.name is longer than 200 characters"
    )
    assert registry.problem(event, 1, {**org, "aliases": ["a"] * 51}) == (
        "data.aliases has more than 50 items"
    )
    assert registry.problem(event, 1, {**org, "region": "r" * 201}) == (
        "data.region matches none of its allowed shapes"
    )
    line = {
        "manifest_line_id": "m1",
        "pledge_id": "p1",
        "line_id": "1",
        "item": "generators",
        "unit": "pieces",
        "loaded": "50",
        "received": "50",
        "damaged": "0",
        "short": "0",
        "lost": "0",
        "correlation_id": None,
    }
    delivery = {
        "convoy_id": "c1",
        "recipient_id": "bucha",
        "origin_id": "lyon",
        "carrier_id": "haulier",
        "confirmed_by": {"name": "Olena", "role": "storekeeper"},
        "document": None,
        "lines": [line],
    }
    confirmed = shipments_events.DELIVERY_CONFIRMED
    assert shipments.problem(confirmed, 1, delivery) is None
    assert shipments.problem(confirmed, 1, {**delivery, "lines": [line] * 501}) == (
        "data.lines has more than 500 items"
    )
    assert shipments.problem(
        confirmed, 1, {**delivery, "lines": [{**line, "item": "g" * 3_500_000}]}
    ) == ("data.lines[0].item is longer than 200 characters")


async def test_an_authentic_registration_with_an_oversize_name_is_parked_not_stored(
    pg_server: str, kafka_bootstrap: str
) -> None:
    rig: Rig
    async with trust_rig(pg_server, kafka_bootstrap) as rig:
        huge = organisation("nowhere", "N" * 10_000, 1)
        good = organisation("lviv", "Lviv", 2)
        async with running(rig):
            hashed = await send(rig, "registry", huge, signer=REGISTRY_KEY)
            await send(rig, "registry", good, previous=hashed, signer=REGISTRY_KEY)
            await settled(rig, {"lviv": "Lviv"}, 1)
        (parked,) = await quarantined(rig)
        assert parked["authentic"] and parked["position"] == 1
        assert "breaks the published schema" in parked["reason"]
        assert "data.name is longer than 200 characters" in parked["reason"]
        assert await inbox(rig) == {1: str(huge.event_id), 2: str(good.event_id)}
        async with rig.pledges_db.connection() as conn:
            longest = await conn.fetchval("SELECT max(length(name)) FROM directory")
        assert longest == len("Lviv")
