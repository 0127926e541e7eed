"""Demo organisations from the four articles in the design sources (docs/sources/): who they
are, where they are, and the contacts the sources name."""

from __future__ import annotations

from typing import Any, NamedTuple

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
    # (lat, lon), 4 decimals (about 10 m): the centre of the town the organisation is in (the
    # sources give no addresses); a region's or a ministry's: its seat's
    centre: tuple[float, float] | None = None
    # the people the sources name as the organisation's contacts (personal data: sealed in the
    # registry's log, shown only to the organisation and registry administrators)
    contacts: tuple[dict[str, str], ...] = ()

    @property
    def coordinates(self) -> dict[str, float] | None:
        return None if self.centre is None else {"lat": self.centre[0], "lon": self.centre[1]}

    def body(self) -> dict[str, Any]:
        fields = {k: v for k, v in self._asdict().items() if k not in ("centre", "contacts")}
        body = {**fields, "aliases": list(self.aliases), "coordinates": self.coordinates}
        if self.contacts:  # only then: the other bodies (and their idempotency keys) as before
            body["contacts"] = [dict(c) for c in self.contacts]
        return body


# Kharkiv's municipal medical warehouse received Lille's convoy (services/shipments/demo/data.py)
OLHA_KRAVCHENKO = {"role": "head of the municipal medical warehouse", "name": "Olha Kravchenko"}


ORGANISATIONS: list[Org] = [
    # Lille and Kharkiv: generators and medicine convoys
    Org(
        "kharkiv",
        "Kharkiv",
        CITY,
        "UA",
        "Kharkiv Oblast",
        ("Charkiw", "Kharkov", "Kharkiv City Council", "Харків", "Харьков"),
        centre=(49.9935, 36.2304),
        contacts=(OLHA_KRAVCHENKO,),
    ),
    Org(
        "lille",
        "Lille",
        CITY,
        "FR",
        "Hauts-de-France",
        ("Ville de Lille", "Rijsel"),
        centre=(50.6292, 3.0573),
    ),
    Org(
        "chu-lille",
        "CHU de Lille",
        HOSPITAL,
        "FR",
        "Hauts-de-France",
        ("Centre hospitalier universitaire de Lille", "Lille University Hospital"),
        centre=(50.6100, 3.0340),
    ),
    Org(
        "fondation-de-lille",
        "Fondation de Lille",
        FOUNDATION,
        "FR",
        "Hauts-de-France",
        ("Lille Foundation",),
        centre=(50.6292, 3.0573),
    ),
    # Leeds and Kharkiv: vans of donations, the Leeds Together for Ukraine appeal
    Org(
        "leeds",
        "Leeds",
        CITY,
        "GB",
        "West Yorkshire",
        ("Leeds City Council",),
        centre=(53.8008, -1.5491),
    ),
    Org(
        "leeds-community-foundation",
        "Leeds Community Foundation",
        FOUNDATION,
        "GB",
        "West Yorkshire",
        centre=(53.8008, -1.5491),
    ),
    Org(
        "leeds-charity-lunch",
        "Leeds Charity Lunch",
        NGO,
        "GB",
        "West Yorkshire",
        centre=(53.8008, -1.5491),
    ),
    Org("brno", "Brno", CITY, "CZ", "South Moravian Region", ("Brünn",), centre=(49.1951, 16.6068)),
    # The 2022 wave of new sister cities
    Org(
        "kyiv",
        "Kyiv",
        CITY,
        "UA",
        "Kyiv",
        ("Kiev", "Kiew", "Kijów", "Київ"),
        centre=(50.4501, 30.5234),
    ),
    Org(
        "paris", "Paris", CITY, "FR", "Île-de-France", ("Ville de Paris",), centre=(48.8566, 2.3522)
    ),
    Org("hamburg", "Hamburg", CITY, "DE", "Hamburg", ("Hambourg",), centre=(53.5511, 9.9937)),
    Org("madrid", "Madrid", CITY, "ES", "Community of Madrid", centre=(40.4168, -3.7038)),
    Org(
        "chernivtsi",
        "Chernivtsi",
        CITY,
        "UA",
        "Chernivtsi Oblast",
        ("Czernowitz", "Cernăuți", "Чернівці"),
        centre=(48.2921, 25.9358),
    ),
    Org("dusseldorf", "Düsseldorf", CITY, "DE", "North Rhine-Westphalia", centre=(51.2277, 6.7735)),
    Org("mannheim", "Mannheim", CITY, "DE", "Baden-Württemberg", centre=(49.4875, 8.4660)),
    Org("metz", "Metz", CITY, "FR", "Grand Est", centre=(49.1193, 6.1757)),
    Org("lublin", "Lublin", CITY, "PL", "Lublin Voivodeship", centre=(51.2465, 22.5684)),
    Org(
        "chernihiv",
        "Chernihiv",
        CITY,
        "UA",
        "Chernihiv Oblast",
        ("Chernigov", "Чернігів"),
        centre=(51.4982, 31.2893),
    ),
    Org("rzeszow", "Rzeszów", CITY, "PL", "Subcarpathian Voivodeship", centre=(50.0412, 21.9991)),
    Org(
        "rivne", "Rivne", CITY, "UA", "Rivne Oblast", ("Rovno", "Рівне"), centre=(50.6199, 26.2516)
    ),
    Org("federal-way", "Federal Way", CITY, "US", "Washington", centre=(47.3223, -122.3126)),
    Org("bourges", "Bourges", CITY, "FR", "Centre-Val de Loire", centre=(47.0810, 2.3988)),
    Org(
        "korosten",
        "Korosten",
        CITY,
        "UA",
        "Zhytomyr Oblast",
        ("Коростень",),
        centre=(50.9502, 28.6384),
    ),
    Org("gdynia", "Gdynia", CITY, "PL", "Pomeranian Voivodeship", centre=(54.5189, 18.5305)),
    Org("pardubice", "Pardubice", CITY, "CZ", "Pardubice Region", centre=(50.0343, 15.7812)),
    Org(
        "zhytomyr",
        "Zhytomyr",
        CITY,
        "UA",
        "Zhytomyr Oblast",
        ("Zhitomir", "Житомир"),
        centre=(50.2547, 28.6587),
    ),
    Org("poprad", "Poprad", CITY, "SK", "Prešov Region", ("Poprád",), centre=(49.0614, 20.2980)),
    Org(
        "uzhhorod",
        "Uzhhorod",
        CITY,
        "UA",
        "Zakarpattia Oblast",
        ("Uzhgorod", "Ungvár", "Ужгород"),
        centre=(48.6208, 22.2879),
    ),
    Org(
        "mindev-ukraine",
        "Ministry for Development of Communities and Territories of Ukraine",
        NATIONAL,
        "UA",
        None,
        ("Minregion",),
        centre=(50.4501, 30.5234),
    ),
    Org(
        "mississippi",
        "State of Mississippi",
        REGION,
        "US",
        "Mississippi",
        ("Mississippi",),
        centre=(32.2988, -90.1848),
    ),
    Org(
        "khmelnytskyi-region",
        "Khmelnytskyi region",
        REGION,
        "UA",
        "Khmelnytskyi Oblast",
        ("Khmelnytskyi Oblast", "Khmelnytska oblast", "Хмельницька область"),
        centre=(49.4229, 26.9871),
    ),
    Org("bucha", "Bucha", CITY, "UA", "Kyiv Oblast", ("Буча",), centre=(50.5436, 30.2131)),
    Org(
        "bergamo",
        "Bergamo",
        CITY,
        "IT",
        "Lombardy",
        ("Comune di Bergamo",),
        centre=(45.6983, 9.6773),
    ),
    Org(
        "irpin",
        "Irpin",
        CITY,
        "UA",
        "Kyiv Oblast",
        ("Irpen", "Irpin City Council", "Ірпінь"),
        centre=(50.5218, 30.2506),
    ),
    Org("miami", "Miami", CITY, "US", "Florida", ("City of Miami",), centre=(25.7617, -80.1918)),
    Org(
        "chortkiv",
        "Chortkiv",
        CITY,
        "UA",
        "Ternopil Oblast",
        ("Czortków", "Чортків"),
        centre=(49.0172, 25.7983),
    ),
    Org("talsi", "Talsi", CITY, "LV", "Talsi Municipality", centre=(57.2447, 22.5889)),
    Org(
        "bergisch-gladbach",
        "Bergisch Gladbach",
        CITY,
        "DE",
        "North Rhine-Westphalia",
        centre=(50.9918, 7.1361),
    ),
    # CEMR's Bridges of Trust: Fastiv and Druskininkai
    Org(
        "cemr",
        "Council of European Municipalities and Regions",
        ASSOCIATION,
        "BE",
        "Brussels",
        ("CEMR", "CCRE", "European section of United Cities and Local Governments"),
        centre=(50.8503, 4.3517),
    ),
    Org("platforma", "PLATFORMA", ASSOCIATION, "BE", "Brussels", centre=(50.8503, 4.3517)),
    Org(
        "fastiv",
        "Fastiv",
        CITY,
        "UA",
        "Kyiv Oblast",
        ("Fastov", "Фастів"),
        centre=(50.0760, 29.9177),
    ),
    Org(
        "fastiv-hospital",
        "Fastiv hospital",
        HOSPITAL,
        "UA",
        "Kyiv Oblast",
        centre=(50.0760, 29.9177),
    ),
    Org(
        "druskininkai",
        "Druskininkai",
        CITY,
        "LT",
        "Alytus County",
        ("Druskininkai municipality", "Druskieniki"),
        centre=(54.0157, 23.9712),
    ),
]
