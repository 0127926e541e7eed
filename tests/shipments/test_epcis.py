"""A convoy's steps as GS1 EPCIS 2.0 JSON-LD: a convoy driven through the API with every kind
of step (loading, unloading, dispatch, checkpoints with and without coordinates, a border
waiting, held and cleared, a hand-off, each kind of incident, arrival, a partial delivery),
exported, validated offline against the EPCIS 2.0 JSON Schema (tests/fixtures/standards/
epcis/), with its CBV business steps, dispositions, read points and quantities checked; and
another donor sees nothing the convoy view does not show it."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import referencing.exceptions
from jsonschema.validators import Draft7Validator

from services.shipments.formats import epcis
from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, entry

STANDARD = Path(__file__).parents[1] / "fixtures" / "standards" / "epcis"
SCHEMA = json.loads((STANDARD / "EPCIS-JSON-Schema.json").read_text())
CONTEXT_TERMS = set(json.loads((STANDARD / "epcis-context.jsonld").read_text())["@context"])
EXAMPLES = sorted((STANDARD / "examples").glob("*.jsonld"))
KHARKIV = {"lat": 49.9935, "lon": 36.2304}
KRAKOW = {"lat": 50.0614, "lon": 19.9366}
MEDYKA = {"lat": 49.8033, "lon": 22.9361}

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    # jsonschema checks "uri" only with an optional package: an absolute URI has a scheme
    return not isinstance(value, str) or (
        re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]*", value) is not None
    )


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def _offline(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # nothing is fetched


VALIDATOR = Draft7Validator(
    SCHEMA,
    format_checker=FORMATS,
    registry=referencing.Registry(retrieve=_offline).with_resource(
        SCHEMA["$id"], referencing.Resource.from_contents(SCHEMA)
    ),
)


def errors_of(document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_standards_examples_validate_offline(example: Path) -> None:
    assert errors_of(json.loads(example.read_text())) == []


def test_the_schema_refuses_what_is_not_epcis() -> None:
    """The validation can fail: a bizStep outside CBV, a number as a string, no time zone."""
    good = json.loads(EXAMPLES[0].read_text())
    event = good["epcisBody"]["eventList"][0]
    for change in (
        {"bizStep": "border_crossing"},
        {"disposition": "lost"},
        {"quantityList": [{"epcClass": "urn:x:1", "quantity": "3"}]},
        {"eventTimeZoneOffset": "UTC"},
        {"eventTime": "yesterday"},
    ):
        bad = {**good, "epcisBody": {"eventList": [{**event, **change}]}}
        assert errors_of(bad), change


@pytest.fixture
async def journey(api: ShipmentsApi) -> ShipmentsApi:
    """Convoy c1 Lille -> Kharkiv by Transports du Nord with four donors' lines in four units,
    and a fifth line loaded then unloaded; every kind of road entry; a partial delivery."""
    await api.feed(
        "registry",
        "registry.organisation-corrected",
        {"organisation_id": "kharkiv", "changes": {"coordinates": KHARKIV}},
        stream_id="organisation-kharkiv",
    )
    for pledge, donor, unit, quantity in (
        ("chu", "chu-lille", "boxes", "100"),
        ("lcl", "leeds-charity-lunch", "pieces", "300"),
        ("lcf", "leeds-community-foundation", "kg", "500"),
        ("water", "lille", "litres", "250"),
    ):
        await api.pledge_line(
            pledge_id=pledge, donor_id=donor, unit=unit, quantity=quantity, weight_kg="500"
        )
    await api.plan("c1")
    for mid, pledge, quantity in (
        ("m-chu", "chu", "100"),
        ("m-lcl", "lcl", "300"),
        ("m-lcf", "lcf", "500"),
        ("m-water", "water", "200"),
        ("m-spare", "water", "0.5"),
    ):
        loaded = await api.load(manifest_line_id=mid, pledge_id=pledge, quantity=quantity)
        assert loaded.status_code == 201, loaded.text
    unloaded = await api.client.post(
        "/v1/convoys/c1/manifest/m-spare/unload",
        json={"reason": "no room left", "occurred_at": "2022-06-06T16:00:00+02:00"},
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    assert unloaded.status_code == 200, unloaded.text
    driver = {"organisation_id": "transports-nord", "person": {"name": "Jean Dupont"}}
    theft = [{"manifest_line_id": "m-lcl", "quantity": "2"}]
    response = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d", custody=driver),
        entry("checkpoint", "2022-06-08T12:00:00+02:00", "k1", place="Kraków", coordinates=KRAKOW),
        entry("checkpoint", "2022-06-08T15:00:00+02:00", "k2", place="Rzeszów ring road"),
        entry("incident", "2022-06-08T16:00:00+02:00", "i-delay", incident="delay",
              description="queue of lorries", delay_minutes=90),
        *(
            entry("border_crossing", at, f"b-{outcome}", crossing_point="Medyka - Shehyni",
                  from_country="PL", to_country="UA", outcome=outcome, coordinates=MEDYKA)
            for at, outcome in (
                ("2022-06-08T20:00:00+02:00", "waiting"),
                ("2022-06-08T22:00:00+02:00", "held"),
                ("2022-06-09T08:00:00+03:00", "cleared"),
            )
        ),
        entry("custody_handoff", "2022-06-09T12:00:00+03:00", "h", from_party=driver,
              to_party={"organisation_id": "ukrposhta", "person": {"name": "Ihor Petrenko"}}),
        entry("incident", "2022-06-09T14:00:00+03:00", "i-damage", incident="damage",
              description="a pallet fell", lines=[{"manifest_line_id": "m-lcl", "quantity": "2"}]),
        entry("incident", "2022-06-09T20:00:00+03:00", "i-theft", incident="theft",
              description="blankets taken at a night stop", lines=theft),
        entry("incident", "2022-06-09T21:00:00+03:00", "i-loss", incident="loss",
              description="a box fell off", lines=[{"manifest_line_id": "m-chu", "quantity": "1"}]),
        entry("incident", "2022-06-09T22:00:00+03:00", "i-seizure", incident="seizure",
              description="flour taken at a roadblock",
              lines=[{"manifest_line_id": "m-lcf", "quantity": "5"}]),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv"),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    confirmed = await api.client.post(
        "/v1/convoys/c1/delivery",
        json={
            "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
            "document": {"name": "pod.pdf", "sha256": "ab" * 32},
            "lines": [
                {"manifest_line_id": "m-chu", "received": "97", "damaged": "1", "short": "1"},
                {"manifest_line_id": "m-lcl", "received": "296", "damaged": "2", "short": "0"},
                {"manifest_line_id": "m-lcf", "received": "495", "damaged": "0", "short": "0"},
                {"manifest_line_id": "m-water", "received": "200", "damaged": "0", "short": "0"},
            ],
            "occurred_at": "2022-06-10T12:00:00+03:00",
        },
        headers=await api.as_("kharkiv", Role.MEMBER),
    )
    assert confirmed.status_code == 201, confirmed.text
    return api


async def export(api: ShipmentsApi, who: tuple[str, Role]) -> dict[str, Any]:
    response = await api.client.get("/v1/convoys/c1/epcis", headers=await api.as_(*who))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ld+json"
    body: dict[str, Any] = response.json()
    return body


def cls(pledge_id: str) -> str:
    return epcis.class_uri(pledge_id, "l1")


def by_entry(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for event in document["epcisBody"]["eventList"]:
        out.setdefault(event.get("twinaid:entryId", event["twinaid:eventType"]), []).append(event)
    return out


def quantities(event: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {q["epcClass"]: (q.get("quantity"), q.get("uom")) for q in event["quantityList"]}


async def test_a_convoy_exports_valid_epcis_with_the_cbv_steps_of_its_journey(
    journey: ShipmentsApi,
) -> None:
    document = await export(journey, ("lille", Role.LOGISTICS))

    assert errors_of(document) == []
    assert (
        document["@context"][0] == "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
    )
    assert document["schemaVersion"] == "2.0" and document["type"] == "EPCISDocument"
    events = document["epcisBody"]["eventList"]
    # JSON-LD: every key is a term of the EPCIS context or one of ours (twinaid:, declared)
    namespace = document["@context"][1]["twinaid"]
    assert namespace.startswith("https://")
    for event in events:
        for key in event:
            assert key in CONTEXT_TERMS or key.startswith("twinaid:"), key
    steps = [(e["bizStep"], e.get("disposition"), e["action"]) for e in events]
    assert steps == [
        *[("loading", "in_progress", "ADD")] * 5,
        ("unloading", None, "OBSERVE"),
        ("departing", "in_transit", "OBSERVE"),
        ("transporting", "in_transit", "OBSERVE"),  # checkpoint
        ("transporting", "in_transit", "OBSERVE"),  # checkpoint, no coordinates
        ("transporting", "in_transit", "OBSERVE"),  # delay
        ("inspecting", "in_transit", "OBSERVE"),  # border: waiting
        ("holding", "in_transit", "OBSERVE"),  # border: held
        ("inspecting", "in_transit", "OBSERVE"),  # border: cleared
        ("accepting", "in_transit", "OBSERVE"),  # custody hand-off
        ("transporting", "damaged", "OBSERVE"),
        ("transporting", "stolen", "OBSERVE"),
        ("transporting", "unknown", "OBSERVE"),  # loss
        ("transporting", "unavailable", "OBSERVE"),  # seizure
        ("arriving", "in_transit", "OBSERVE"),
        ("receiving", "in_progress", "OBSERVE"),
        ("receiving", "damaged", "OBSERVE"),
        ("receiving", "mismatch_quantity", "OBSERVE"),  # short
    ]
    assert len({e["eventID"] for e in events}) == len(events)
    assert all(e["eventID"].startswith("urn:uuid:") for e in events)
    assert all(e["eventTimeZoneOffset"] == "+00:00" for e in events)

    steps_of = by_entry(document)
    # read points: coordinates where known, else the organisation
    lille = epcis.organisation_uri("lille")
    assert {e["readPoint"]["id"] for e in steps_of["shipments.manifest-line-loaded"]} == {lille}
    assert steps_of["d"][0]["readPoint"] == {"id": lille}
    assert steps_of["k1"][0]["readPoint"] == {"id": "geo:50.0614,19.9366"}
    assert "readPoint" not in steps_of["k2"][0] and steps_of["k2"][0]["twinaid:place"]
    assert steps_of["b-held"][0]["readPoint"] == {"id": "geo:49.8033,22.9361"}
    assert steps_of["a"][0]["readPoint"] == {"id": "geo:49.9935,36.2304"}
    # quantities per manifest line, with UN/ECE Rec 20 units
    loads = [quantities(e) for e in steps_of["shipments.manifest-line-loaded"]]
    assert loads == [
        {cls("chu"): (100, "XBX")},
        {cls("lcl"): (300, "H87")},
        {cls("lcf"): (500, "KGM")},
        {cls("water"): (200, "LTR")},
        {cls("water"): (0.5, "LTR")},
    ]
    on_board = {cls("chu"): (100, "XBX"), cls("lcl"): (300, "H87")}
    on_board |= {cls("lcf"): (500, "KGM"), cls("water"): (200, "LTR")}
    assert quantities(steps_of["d"][0]) == on_board
    assert quantities(steps_of["k1"][0]) == on_board
    assert quantities(steps_of["i-theft"][0]) == {cls("lcl"): (2, "H87")}
    assert quantities(steps_of["i-damage"][0]) == {cls("lcl"): (2, "H87")}
    assert quantities(steps_of["a"][0]) == {
        cls("chu"): (99, "XBX"),
        cls("lcl"): (298, "H87"),
        cls("lcf"): (495, "KGM"),
        cls("water"): (200, "LTR"),
    }
    received, damaged, short = steps_of["shipments.delivery-confirmed"]
    assert quantities(received) == {
        cls("chu"): (97, "XBX"),
        cls("lcl"): (296, "H87"),
        cls("lcf"): (495, "KGM"),
        cls("water"): (200, "LTR"),
    }
    assert quantities(damaged) == {cls("chu"): (1, "XBX"), cls("lcl"): (2, "H87")}
    assert quantities(short) == {cls("chu"): (1, "XBX")}
    # parties: ownership origin -> recipient; possession carrier -> ukrposhta -> recipient
    kharkiv = epcis.organisation_uri("kharkiv")
    assert {"type": "owning_party", "source": lille} in steps_of["d"][0]["sourceList"]
    assert {"type": "owning_party", "destination": kharkiv} in received["destinationList"]
    handoff = steps_of["h"][0]
    assert handoff["sourceList"] == [
        {"type": "possessing_party", "source": epcis.organisation_uri("transports-nord")}
    ]
    assert handoff["destinationList"] == [
        {"type": "possessing_party", "destination": epcis.organisation_uri("ukrposhta")}
    ]
    assert {"type": "possessing_party", "source": epcis.organisation_uri("ukrposhta")} in (
        received["sourceList"]
    )
    # business transactions: the convoy and each pledge of the lines the event concerns
    types = Counter(t["type"] for t in received["bizTransactionList"])
    assert types == {"twinaid:convoy": 1, "twinaid:pledge": 4, "recadv": 1}
    assert steps_of["i-theft"][0]["bizTransactionList"][1] == {
        "type": "twinaid:pledge",
        "bizTransaction": "https://twinaid.example/id/pledge/lcl",
    }


async def test_another_donor_sees_in_epcis_what_the_convoy_view_shows_it(
    journey: ShipmentsApi,
) -> None:
    """The CHU sees its own line's fate; of the others only what was loaded, as in the
    convoy view; nobody's name."""
    who = ("chu-lille", Role.MEMBER)
    document = await export(journey, who)
    view = await journey.convoy("c1", who=who)
    text = json.dumps(document, ensure_ascii=False)

    assert errors_of(document) == []
    hidden = {line["manifest_line_id"] for line in view["manifest"] if line["lost"] is None}
    assert hidden == {"m-lcl", "m-lcf", "m-water", "m-spare"}
    for name in ("Jean Dupont", "Ihor Petrenko", "Natalia Koval"):
        assert name in json.dumps(await export(journey, ("kharkiv", Role.MEMBER)))
        assert name not in text
    steps_of = by_entry(document)
    others = {cls("lcl"), cls("lcf"), cls("water")}
    # what was loaded is on the manifest for everyone, also at departure
    assert quantities(steps_of["d"][0])[cls("lcl")] == (300, "H87")
    # after departure, others' lines have their class and no figure
    for key in ("k1", "b-cleared", "a"):
        seen = quantities(steps_of[key][0])
        assert seen[cls("chu")][0] is not None
        assert all(seen[c] == (None, None) for c in others), (key, seen)
    received, damaged, short = steps_of["shipments.delivery-confirmed"]
    assert quantities(received) == {cls("chu"): (97, "XBX")} | {c: (None, None) for c in others}
    assert quantities(damaged) == {cls("chu"): (1, "XBX")}
    assert quantities(short) == {cls("chu"): (1, "XBX")}
    # others' incidents: the incident as the timeline shows it, without goods or disposition
    for key in ("i-theft", "i-damage", "i-seizure"):
        (incident,) = steps_of[key]
        assert incident["epcList"] == [] and "quantityList" not in incident
        assert "disposition" not in incident
    assert quantities(steps_of["i-loss"][0]) == {cls("chu"): (1, "XBX")}
    assert steps_of["i-loss"][0]["disposition"] == "unknown"


async def test_the_export_follows_the_convoy_access_rules(journey: ShipmentsApi) -> None:
    outsider = await journey.client.get(
        "/v1/convoys/c1/epcis", headers=await journey.as_("bucha", Role.MEMBER)
    )
    assert outsider.status_code == 403
    assert outsider.headers["content-type"] == "application/problem+json"
    missing = await journey.client.get(
        "/v1/convoys/nope/epcis", headers=await journey.as_("lille", Role.LOGISTICS)
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
