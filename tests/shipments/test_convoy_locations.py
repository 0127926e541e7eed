"""A convoy shows where its origin and destination are (`origin_location`,
`destination_location`: `{"lat", "lon"}` or null), as shipments' directory holds the
registry's coordinates now: given, moved or cleared after the convoy was planned, the convoy
shows the change without an event of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi

LILLE = {"lat": 50.6292, "lon": 3.0573}
KHARKIV = {"lat": 49.9935, "lon": 36.2304}
BUCHA = {"lat": 50.5436, "lon": 30.2131}


async def locate(api: ShipmentsApi, slug: str, coordinates: dict[str, float] | None) -> None:
    """The registry corrects where `slug` is; shipments' consumer applies it."""
    applied = await api.feed(
        "registry",
        "registry.organisation-corrected",
        {
            "organisation_id": slug,
            "changes": {"coordinates": coordinates},
            "previous": {"coordinates": None},
            "reason": "surveyed",
        },
        stream_id=f"organisation-{slug}",
    )
    assert applied


def ends(convoy: dict[str, Any]) -> tuple[Any, Any]:
    return convoy["origin_location"], convoy["destination_location"]


async def test_the_convoy_shows_its_ends_locations_from_the_directory(api: ShipmentsApi) -> None:
    await api.plan()
    assert ends(await api.convoy()) == (None, None), "the registry gave no coordinates yet"

    await locate(api, "lille", LILLE)
    assert ends(await api.convoy()) == (LILLE, None)

    await locate(api, "kharkiv", KHARKIV)
    convoy = await api.convoy()
    assert ends(convoy) == (LILLE, KHARKIV)
    assert (convoy["origin_id"], convoy["destination_id"]) == ("lille", "kharkiv")
    # the carrier sees them too: where a town is is no one's personal data
    carrier = await api.convoy(who=("transports-nord", Role.LOGISTICS))
    assert ends(carrier) == (LILLE, KHARKIV)

    moved = {"lat": 49.9901, "lon": 36.2311}
    await locate(api, "kharkiv", moved)
    assert ends(await api.convoy()) == (LILLE, moved)
    await locate(api, "lille", None)
    assert ends(await api.convoy()) == (None, moved)


async def test_every_convoy_shows_its_own_ends(api: ShipmentsApi) -> None:
    await locate(api, "lille", LILLE)
    await locate(api, "kharkiv", KHARKIV)
    await locate(api, "bucha", BUCHA)
    await api.plan("c1")
    await api.plan("c2", destination_id="bucha", reference="Lille - Bucha")
    assert ends(await api.convoy("c1")) == (LILLE, KHARKIV)
    assert ends(await api.convoy("c2")) == (LILLE, BUCHA)


async def test_a_correction_with_no_coordinates_among_its_changes_keeps_them(
    api: ShipmentsApi,
) -> None:
    await locate(api, "kharkiv", KHARKIV)
    await api.plan()
    applied = await api.feed(
        "registry",
        "registry.organisation-corrected",
        {
            "organisation_id": "kharkiv",
            "changes": {"kind": "region"},
            "previous": {"kind": "municipality"},
            "reason": "it is the oblast",
        },
        stream_id="organisation-kharkiv",
    )
    assert applied
    assert ends(await api.convoy()) == (None, KHARKIV)


async def test_the_convoy_as_of_an_instant_shows_its_ends_too(api: ShipmentsApi) -> None:
    await locate(api, "lille", LILLE)
    await locate(api, "kharkiv", KHARKIV)
    await api.plan()
    as_of = datetime.now(UTC).isoformat()
    response = await api.client.get(
        "/v1/convoys/c1",
        params={"as_of": as_of},
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    assert response.status_code == 200, response.text
    assert ends(response.json()) == (LILLE, KHARKIV)
