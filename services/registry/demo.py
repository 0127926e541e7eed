"""Demo organisations and partnerships from the four articles in the design sources, over HTTP.

`python -m services.registry.demo --url http://127.0.0.1:8101 --key <registry_admin key>`.
Safe to re-run: every write carries an Idempotency-Key derived from its body, an organisation
or partnership that exists already (409) is fine, and a partnership is only moved along the
steps it has not made yet (read first with GET).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx

CITY = "municipality"
REGION = "region"
NATIONAL = "national_body"
HOSPITAL = "hospital"
FOUNDATION = "foundation"
NGO = "ngo"
ASSOCIATION = "association"


class Org(NamedTuple):
    organisation_id: str
    name: str
    kind: str
    country: str
    region: str | None
    aliases: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {**self._asdict(), "aliases": list(self.aliases)}


ORGANISATIONS: list[Org] = [
    # Lille and Kharkiv: generators and medicine convoys
    Org(
        "kharkiv",
        "Kharkiv",
        CITY,
        "UA",
        "Kharkiv Oblast",
        ("Charkiw", "Kharkov", "Kharkiv City Council", "Харків", "Харьков"),
    ),
    Org("lille", "Lille", CITY, "FR", "Hauts-de-France", ("Ville de Lille", "Rijsel")),
    Org(
        "chu-lille",
        "CHU de Lille",
        HOSPITAL,
        "FR",
        "Hauts-de-France",
        ("Centre hospitalier universitaire de Lille", "Lille University Hospital"),
    ),
    Org(
        "fondation-de-lille",
        "Fondation de Lille",
        FOUNDATION,
        "FR",
        "Hauts-de-France",
        ("Lille Foundation",),
    ),
    # Leeds and Kharkiv: vans of donations, the Leeds Together for Ukraine appeal
    Org("leeds", "Leeds", CITY, "GB", "West Yorkshire", ("Leeds City Council",)),
    Org(
        "leeds-community-foundation",
        "Leeds Community Foundation",
        FOUNDATION,
        "GB",
        "West Yorkshire",
    ),
    Org("leeds-charity-lunch", "Leeds Charity Lunch", NGO, "GB", "West Yorkshire"),
    Org("brno", "Brno", CITY, "CZ", "South Moravian Region", ("Brünn",)),
    # The 2022 wave of new sister cities
    Org("kyiv", "Kyiv", CITY, "UA", "Kyiv", ("Kiev", "Kiew", "Kijów", "Київ")),
    Org("paris", "Paris", CITY, "FR", "Île-de-France", ("Ville de Paris",)),
    Org("hamburg", "Hamburg", CITY, "DE", "Hamburg", ("Hambourg",)),
    Org("madrid", "Madrid", CITY, "ES", "Community of Madrid"),
    Org(
        "chernivtsi",
        "Chernivtsi",
        CITY,
        "UA",
        "Chernivtsi Oblast",
        ("Czernowitz", "Cernăuți", "Чернівці"),
    ),
    Org("dusseldorf", "Düsseldorf", CITY, "DE", "North Rhine-Westphalia"),
    Org("mannheim", "Mannheim", CITY, "DE", "Baden-Württemberg"),
    Org("metz", "Metz", CITY, "FR", "Grand Est"),
    Org("lublin", "Lublin", CITY, "PL", "Lublin Voivodeship"),
    Org("chernihiv", "Chernihiv", CITY, "UA", "Chernihiv Oblast", ("Chernigov", "Чернігів")),
    Org("rzeszow", "Rzeszów", CITY, "PL", "Subcarpathian Voivodeship"),
    Org("rivne", "Rivne", CITY, "UA", "Rivne Oblast", ("Rovno", "Рівне")),
    Org("federal-way", "Federal Way", CITY, "US", "Washington"),
    Org("bourges", "Bourges", CITY, "FR", "Centre-Val de Loire"),
    Org("korosten", "Korosten", CITY, "UA", "Zhytomyr Oblast", ("Коростень",)),
    Org("gdynia", "Gdynia", CITY, "PL", "Pomeranian Voivodeship"),
    Org("pardubice", "Pardubice", CITY, "CZ", "Pardubice Region"),
    Org("zhytomyr", "Zhytomyr", CITY, "UA", "Zhytomyr Oblast", ("Zhitomir", "Житомир")),
    Org("poprad", "Poprad", CITY, "SK", "Prešov Region", ("Poprád",)),
    Org(
        "uzhhorod", "Uzhhorod", CITY, "UA", "Zakarpattia Oblast", ("Uzhgorod", "Ungvár", "Ужгород")
    ),
    Org(
        "mindev-ukraine",
        "Ministry for Development of Communities and Territories of Ukraine",
        NATIONAL,
        "UA",
        None,
        ("Minregion",),
    ),
    Org("mississippi", "State of Mississippi", REGION, "US", "Mississippi", ("Mississippi",)),
    Org(
        "khmelnytskyi-region",
        "Khmelnytskyi region",
        REGION,
        "UA",
        "Khmelnytskyi Oblast",
        ("Khmelnytskyi Oblast", "Khmelnytska oblast", "Хмельницька область"),
    ),
    Org("bucha", "Bucha", CITY, "UA", "Kyiv Oblast", ("Буча",)),
    Org("bergamo", "Bergamo", CITY, "IT", "Lombardy", ("Comune di Bergamo",)),
    Org("irpin", "Irpin", CITY, "UA", "Kyiv Oblast", ("Irpen", "Irpin City Council", "Ірпінь")),
    Org("miami", "Miami", CITY, "US", "Florida", ("City of Miami",)),
    Org("chortkiv", "Chortkiv", CITY, "UA", "Ternopil Oblast", ("Czortków", "Чортків")),
    Org("talsi", "Talsi", CITY, "LV", "Talsi Municipality"),
    Org("bergisch-gladbach", "Bergisch Gladbach", CITY, "DE", "North Rhine-Westphalia"),
    # CEMR's Bridges of Trust: Fastiv and Druskininkai
    Org(
        "cemr",
        "Council of European Municipalities and Regions",
        ASSOCIATION,
        "BE",
        "Brussels",
        ("CEMR", "CCRE", "European section of United Cities and Local Governments"),
    ),
    Org("platforma", "PLATFORMA", ASSOCIATION, "BE", "Brussels"),
    Org("fastiv", "Fastiv", CITY, "UA", "Kyiv Oblast", ("Fastov", "Фастів")),
    Org("fastiv-hospital", "Fastiv hospital", HOSPITAL, "UA", "Kyiv Oblast"),
    Org(
        "druskininkai",
        "Druskininkai",
        CITY,
        "LT",
        "Alytus County",
        ("Druskininkai municipality", "Druskieniki"),
    ),
]


