"""The convoys the articles in the design sources tell of, drawing on the pledges demo's lines.

- Lille -> Kharkiv, June 2022: "a convoy of 13 tons having been sent last June, in
  collaboration with the hospital center (CHU) of Lille" (kharkiv-lille-generators-medicines).
  Two trucks; one carton arrives crushed: delivered partly, then closed.
- Lille -> Kharkiv, March 2023: "about fifty" medium-sized generators bought on the municipal
  budget. On the road: the border cleared, last seen near Poltava.
- Lille -> Kharkiv, second medicine convoy "in preparation to leave at the beginning of March",
  the CHU's half on board: loading.
- Leeds -> Kharkiv, March 2022: "took two vans over to the country in a week-long trip"
  (leeds-kharkiv-partnership). The pledges demo pledges only money for Leeds, so the vans leave
  only if a committed in-kind line from a Leeds donor is known.

Routes, times, registrations, customs numbers and names are plausible stand-ins: the articles
give none. Organisation ids are the registry demo's slugs.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Want(NamedTuple):
    """Which pledge line a manifest line draws on: by its ids, or the first loadable line of
    one of `donors` to the convoy's recipient."""

    pledge_id: str | None = None
    line_id: str | None = None
    donors: tuple[str, ...] = ()


class Load(NamedTuple):
    manifest_line_id: str
    want: Want
    vehicle: str
    quantity: str | None = None  # None: what remains loadable
    share: tuple[int, int] = (1, 1)  # of what remains: (numerator, denominator)
    weight_kg_per_unit: str | None = None  # when the pledge gives no weight estimate


class DemoConvoy(NamedTuple):
    plan: dict[str, Any]
    loads: tuple[Load, ...]
    entries: tuple[dict[str, Any], ...] = ()
    # per manifest line, what did not arrive in good condition: {id: {"damaged": "0.012"}}
    delivery: dict[str, Any] | None = None
    close: dict[str, Any] | None = None

    @property
    def convoy_id(self) -> str:
        convoy_id: str = self.plan["convoy_id"]
        return convoy_id


Entry = tuple[str, str, dict[str, Any]]  # a road entry's kind, when it occurred, its fields


def _road(convoy: str, *entries: Entry) -> tuple[dict[str, Any], ...]:
    """A convoy's road entries in the order they occurred, numbered so: <convoy>-01, -02, ...
    (fixed ids: a re-sent batch records nothing)."""
    return tuple(
        {"entry_id": f"{convoy}-{n:02d}", "kind": kind, "occurred_at": at, **fields}
        for n, (kind, at, fields) in enumerate(entries, 1)
    )


def _seen(at: str, place: str, lat: float, lon: float, **more: Any) -> Entry:
    """A checkpoint: where the convoy was seen."""
    return "checkpoint", at, {"place": place, "coordinates": {"lat": lat, "lon": lon}, **more}


def _border(
    at: str,
    crossing_point: str,
    from_country: str,
    to_country: str,
    *,
    customs_document: str | None = None,
    outcome: str = "cleared",
    **more: Any,
) -> Entry:
    """A border crossing, waited at or cleared (then with its customs document, if any)."""
    fields: dict[str, Any] = {
        "crossing_point": crossing_point,
        "from_country": from_country,
        "to_country": to_country,
    }
    if customs_document:
        fields["customs_document"] = customs_document
    return "border_crossing", at, {**fields, "outcome": outcome, **more}


KRAKOVETS = {"lat": 49.9497, "lon": 23.0928}  # the Korczowa - Krakovets crossing

MEDICINES_2022 = "lille-kharkiv-medicines-2022-06"
MEDICINES = DemoConvoy(
    plan={
        "convoy_id": MEDICINES_2022,
        "reference": "Lille - Kharkiv medicines, June 2022 (with the CHU de Lille)",
        "origin_id": "lille",
        "destination_id": "kharkiv",
        "carrier_id": "lille",
        "planned_departure": "2022-06-14T06:00:00+02:00",
        "vehicles": [
            {"registration": "GH-482-LK", "type": "rigid truck 19 t", "capacity_kg": "9500"},
            {"registration": "FD-117-PR", "type": "rigid truck 12 t", "capacity_kg": "6500"},
        ],
        "drivers": [
            {"name": "Karim Benali", "phone": "+33 6 12 34 56 78", "vehicle": "GH-482-LK"},
            {"name": "Sophie Lemaire", "phone": "+33 6 98 76 54 32", "vehicle": "FD-117-PR"},
        ],
        "route": ["Lille", "Aachen", "Dresden", "Wrocław", "Kraków", "Korczowa", "Lviv", "Kyiv"],
        "note": "Medicines prepared with the CHU de Lille pharmacy; cold chain not required.",
        "occurred_at": "2022-06-02T10:00:00+02:00",
    },
    loads=(
        Load("medicines-truck-1", Want(MEDICINES_2022, "medicines"), "GH-482-LK", "7"),
        Load("medicines-truck-2", Want(MEDICINES_2022, "medicines"), "FD-117-PR", "6"),
    ),
    entries=_road(
        MEDICINES_2022,
        ("dispatch", "2022-06-14T06:20:00+02:00", {"note": "Left Lille"}),
        _seen("2022-06-14T11:40:00+02:00", "Aachen", 50.7753, 6.0839),
        _seen("2022-06-14T21:15:00+02:00", "Dresden", 51.0504, 13.7373, note="Night stop"),
        _seen("2022-06-15T13:30:00+02:00", "Kraków", 50.0647, 19.9450),
        _border(
            "2022-06-15T19:00:00+02:00",
            "Korczowa - Krakovets",
            "PL",
            "UA",
            outcome="waiting",
            coordinates=KRAKOVETS,
        ),
        _border(
            "2022-06-16T07:45:00+03:00",
            "Korczowa - Krakovets",
            "PL",
            "UA",
            customs_document="UA-209-2022-061447",
            coordinates=KRAKOVETS,
        ),
        _seen("2022-06-16T11:00:00+03:00", "Lviv", 49.8397, 24.0297),
        (
            "incident",
            "2022-06-16T23:00:00+03:00",
            {
                "incident": "delay",
                "description": "Curfew: stopped for the night before Kyiv",
                "delay_minutes": 420,
            },
        ),
        _seen("2022-06-17T10:30:00+03:00", "Kyiv", 50.4501, 30.5234),
        (
            "custody_handoff",
            "2022-06-17T12:00:00+03:00",
            {
                "from_party": {"organisation_id": "lille"},
                "to_party": {
                    "organisation_id": "kharkiv",
                    "person": {"name": "Andrii Melnyk", "role": "escort team leader"},
                },
                "note": "Kharkiv City Council escort takes over for the last leg",
            },
        ),
        _seen("2022-06-17T18:20:00+03:00", "Poltava", 49.5883, 34.5514),
        ("arrival", "2022-06-18T09:10:00+03:00", {"place": "Kharkiv, municipal medical warehouse"}),
    ),
    # one carton of 12 kg crushed in the first truck
    delivery={
        "receiver": {"name": "Olha Kravchenko", "role": "head of the municipal medical warehouse"},
        "document": {
            "name": "kharkiv-receipt-2022-06-18.pdf",
            "sha256": "3f1c0a6e5b9d47e2a8c4f6b1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5",
        },
        "damaged": {"medicines-truck-1": "0.012"},
        "occurred_at": "2022-06-18T11:30:00+03:00",
    },
    close={
        "note": "Crushed carton reported to the CHU de Lille",
        "occurred_at": "2022-06-20T09:00:00+02:00",
    },
)

GENERATORS_2023 = "lille-kharkiv-generators-2023-03"
GENERATORS = DemoConvoy(
    plan={
        "convoy_id": GENERATORS_2023,
        "reference": "Lille - Kharkiv generators, March 2023",
        "origin_id": "lille",
        "destination_id": "kharkiv",
        "carrier_id": "lille",
        "planned_departure": "2023-03-06T06:00:00+01:00",
        "vehicles": [
            {"registration": "GK-305-VB", "type": "semi-trailer truck", "capacity_kg": "24000"},
        ],
        "drivers": [{"name": "Julien Carpentier", "phone": "+33 7 44 18 20 61"}],
        "route": ["Lille", "Cologne", "Leipzig", "Wrocław", "Medyka", "Lviv", "Kyiv", "Poltava"],
        "occurred_at": "2023-02-24T15:00:00+01:00",
    },
    loads=(
        Load(
            "generators",
            Want("lille-kharkiv-generators-2023", "generators"),
            "GK-305-VB",
            weight_kg_per_unit="95",
        ),
    ),
    entries=_road(
        GENERATORS_2023,
        ("dispatch", "2023-03-06T06:30:00+01:00", {}),
        _seen("2023-03-06T14:00:00+01:00", "Cologne", 50.9375, 6.9603),
        _seen("2023-03-07T09:30:00+01:00", "Wrocław", 51.1079, 17.0385),
        _border(
            "2023-03-07T20:10:00+01:00",
            "Medyka - Shehyni",
            "PL",
            "UA",
            customs_document="UA-209-2023-030771",
            coordinates={"lat": 49.8050, "lon": 23.0000},
        ),
        _seen("2023-03-08T10:00:00+02:00", "Lviv", 49.8397, 24.0297),
        _seen("2023-03-08T20:40:00+02:00", "Kyiv", 50.4501, 30.5234),
        _seen(
            "2023-03-09T08:15:00+02:00",
            "Poltava",
            49.5883,
            34.5514,
            note="Waiting for the road to Kharkiv to open",
        ),
    ),
)


MEDICINES_2023 = "lille-kharkiv-medicines-2023-03"
SECOND_MEDICINES = DemoConvoy(
    plan={
        "convoy_id": MEDICINES_2023,
        "reference": "Lille - Kharkiv medicines, second convoy (March 2023)",
        "origin_id": "lille",
        "destination_id": "kharkiv",
        "carrier_id": "lille",
        "planned_departure": "2023-03-01T06:00:00+01:00",
        "vehicles": [
            {"registration": "GH-482-LK", "type": "rigid truck 19 t", "capacity_kg": "9500"},
        ],
        "note": "Half provided by the CHU; the other half waits for the Fondation de Lille appeal.",
        "occurred_at": "2023-02-20T10:00:00+01:00",
    },
    loads=(
        Load("chu-half", Want("chu-lille-kharkiv-medicines-2023-03", "medicines"), "GH-482-LK"),
    ),
)

LEEDS_VANS = "leeds-kharkiv-vans-2022-03"
LEEDS = DemoConvoy(
    plan={
        "convoy_id": LEEDS_VANS,
        "reference": "Ukraine Aid Appeal vans, Leeds - Kharkiv, March 2022",
        "origin_id": "leeds",
        "destination_id": "kharkiv",
        "carrier_id": "leeds-charity-lunch",
        "planned_departure": "2022-03-19T07:00:00+00:00",
        "vehicles": [
            {"registration": "YK71 LRB", "type": "van", "capacity_kg": "1300"},
            {"registration": "YK19 UAA", "type": "van", "capacity_kg": "1300"},
        ],
        "drivers": [
            {"name": "Tom Whitaker", "phone": "+44 7700 900123", "vehicle": "YK71 LRB"},
            {"name": "Priya Shah", "phone": "+44 7700 900456", "vehicle": "YK19 UAA"},
        ],
        "route": ["Leeds", "Dover", "Calais", "Brussels", "Berlin", "Warsaw", "Lviv", "Kharkiv"],
        "occurred_at": "2022-03-14T12:00:00+00:00",
    },
    loads=(
        Load(
            "van-1",
            Want(donors=("leeds-charity-lunch", "leeds", "leeds-community-foundation")),
            "YK71 LRB",
            share=(1, 2),
            weight_kg_per_unit="8",
        ),
        Load(
            "van-2",
            Want(donors=("leeds-charity-lunch", "leeds", "leeds-community-foundation")),
            "YK19 UAA",
            share=(1, 1),
            weight_kg_per_unit="8",
        ),
    ),
    entries=_road(
        LEEDS_VANS,
        ("dispatch", "2022-03-19T07:30:00+00:00", {"note": "Send-off in Leeds"}),
        _border(
            "2022-03-19T13:00:00+00:00",
            "Dover - Calais",
            "GB",
            "FR",
            customs_document="GB-EX-22-0319-4471",
        ),
        _seen("2022-03-20T18:00:00+01:00", "Berlin", 52.5200, 13.4050),
        _seen("2022-03-21T17:30:00+01:00", "Warsaw", 52.2297, 21.0122),
        _border(
            "2022-03-22T09:00:00+01:00",
            "Dorohusk - Yahodyn",
            "PL",
            "UA",
            customs_document="UA-205-2022-032241",
        ),
        _seen("2022-03-22T19:00:00+02:00", "Lviv", 49.8397, 24.0297),
        ("arrival", "2022-03-25T15:00:00+02:00", {"place": "Kharkiv, humanitarian hub"}),
    ),
    delivery={
        "receiver": {"name": "Iryna Bondarenko", "role": "humanitarian hub coordinator"},
        "occurred_at": "2022-03-25T17:00:00+02:00",
    },
    close={"occurred_at": "2022-03-26T10:00:00+02:00"},
)

CONVOYS: list[DemoConvoy] = [MEDICINES, GENERATORS, SECOND_MEDICINES, LEEDS]
