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
    Org("kharkiv", "Kharkiv", CITY, "UA", "Kharkiv Oblast",
        centre=(49.9935, 36.2304),
        aliases=("Charkiw", "Kharkov", "Kharkiv City Council", "Харків", "Харьков"),
        contacts=(OLHA_KRAVCHENKO,)),
    Org("lille", "Lille", CITY, "FR", "Hauts-de-France",
        centre=(50.6292, 3.0573), aliases=("Ville de Lille", "Rijsel")),
    Org("chu-lille", "CHU de Lille", HOSPITAL, "FR", "Hauts-de-France",
        centre=(50.6100, 3.0340),
        aliases=("Centre hospitalier universitaire de Lille", "Lille University Hospital")),
    Org("fondation-de-lille", "Fondation de Lille", FOUNDATION, "FR", "Hauts-de-France",
        centre=(50.6292, 3.0573), aliases=("Lille Foundation",)),
    # Leeds and Kharkiv: vans of donations, the Leeds Together for Ukraine appeal
    Org("leeds", "Leeds", CITY, "GB", "West Yorkshire",
        centre=(53.8008, -1.5491), aliases=("Leeds City Council",)),
    Org("leeds-community-foundation", "Leeds Community Foundation",
        FOUNDATION, "GB", "West Yorkshire",
        centre=(53.8008, -1.5491)),
    Org("leeds-charity-lunch", "Leeds Charity Lunch", NGO, "GB", "West Yorkshire",
        centre=(53.8008, -1.5491)),
    Org("brno", "Brno", CITY, "CZ", "South Moravian Region",
        centre=(49.1951, 16.6068), aliases=("Brünn",)),
    # The 2022 wave of new sister cities
    Org("kyiv", "Kyiv", CITY, "UA", "Kyiv",
        centre=(50.4501, 30.5234), aliases=("Kiev", "Kiew", "Kijów", "Київ")),
    Org("paris", "Paris", CITY, "FR", "Île-de-France",
        centre=(48.8566, 2.3522), aliases=("Ville de Paris",)),
    Org("hamburg", "Hamburg", CITY, "DE", "Hamburg",
        centre=(53.5511, 9.9937), aliases=("Hambourg",)),
    Org("madrid", "Madrid", CITY, "ES", "Community of Madrid", centre=(40.4168, -3.7038)),
    Org("chernivtsi", "Chernivtsi", CITY, "UA", "Chernivtsi Oblast",
        centre=(48.2921, 25.9358), aliases=("Czernowitz", "Cernăuți", "Чернівці")),
    Org("dusseldorf", "Düsseldorf", CITY, "DE", "North Rhine-Westphalia", centre=(51.2277, 6.7735)),
    Org("mannheim", "Mannheim", CITY, "DE", "Baden-Württemberg", centre=(49.4875, 8.4660)),
    Org("metz", "Metz", CITY, "FR", "Grand Est", centre=(49.1193, 6.1757)),
    Org("lublin", "Lublin", CITY, "PL", "Lublin Voivodeship", centre=(51.2465, 22.5684)),
    Org("chernihiv", "Chernihiv", CITY, "UA", "Chernihiv Oblast",
        centre=(51.4982, 31.2893), aliases=("Chernigov", "Чернігів")),
    Org("rzeszow", "Rzeszów", CITY, "PL", "Subcarpathian Voivodeship", centre=(50.0412, 21.9991)),
    Org("rivne", "Rivne", CITY, "UA", "Rivne Oblast",
        centre=(50.6199, 26.2516), aliases=("Rovno", "Рівне")),
    Org("federal-way", "Federal Way", CITY, "US", "Washington", centre=(47.3223, -122.3126)),
    Org("bourges", "Bourges", CITY, "FR", "Centre-Val de Loire", centre=(47.0810, 2.3988)),
    Org("korosten", "Korosten", CITY, "UA", "Zhytomyr Oblast",
        centre=(50.9502, 28.6384), aliases=("Коростень",)),
    Org("gdynia", "Gdynia", CITY, "PL", "Pomeranian Voivodeship", centre=(54.5189, 18.5305)),
    Org("pardubice", "Pardubice", CITY, "CZ", "Pardubice Region", centre=(50.0343, 15.7812)),
    Org("zhytomyr", "Zhytomyr", CITY, "UA", "Zhytomyr Oblast",
        centre=(50.2547, 28.6587), aliases=("Zhitomir", "Житомир")),
    Org("poprad", "Poprad", CITY, "SK", "Prešov Region",
        centre=(49.0614, 20.2980), aliases=("Poprád",)),
    Org("uzhhorod", "Uzhhorod", CITY, "UA", "Zakarpattia Oblast",
        centre=(48.6208, 22.2879), aliases=("Uzhgorod", "Ungvár", "Ужгород")),
    Org("mindev-ukraine", "Ministry for Development of Communities and Territories of Ukraine",
        NATIONAL, "UA", None,
        centre=(50.4501, 30.5234), aliases=("Minregion",)),
    Org("mississippi", "State of Mississippi", REGION, "US", "Mississippi",
        centre=(32.2988, -90.1848), aliases=("Mississippi",)),
    Org("khmelnytskyi-region", "Khmelnytskyi region", REGION, "UA", "Khmelnytskyi Oblast",
        centre=(49.4229, 26.9871),
        aliases=("Khmelnytskyi Oblast", "Khmelnytska oblast", "Хмельницька область")),
    Org("bucha", "Bucha", CITY, "UA", "Kyiv Oblast", centre=(50.5436, 30.2131), aliases=("Буча",)),
    Org("bergamo", "Bergamo", CITY, "IT", "Lombardy",
        centre=(45.6983, 9.6773), aliases=("Comune di Bergamo",)),
    Org("irpin", "Irpin", CITY, "UA", "Kyiv Oblast",
        centre=(50.5218, 30.2506), aliases=("Irpen", "Irpin City Council", "Ірпінь")),
    Org("miami", "Miami", CITY, "US", "Florida",
        centre=(25.7617, -80.1918), aliases=("City of Miami",)),
    Org("chortkiv", "Chortkiv", CITY, "UA", "Ternopil Oblast",
        centre=(49.0172, 25.7983), aliases=("Czortków", "Чортків")),
    Org("talsi", "Talsi", CITY, "LV", "Talsi Municipality", centre=(57.2447, 22.5889)),
    Org("bergisch-gladbach", "Bergisch Gladbach", CITY, "DE", "North Rhine-Westphalia",
        centre=(50.9918, 7.1361)),
    # CEMR's Bridges of Trust: Fastiv and Druskininkai
    Org("cemr", "Council of European Municipalities and Regions", ASSOCIATION, "BE", "Brussels",
        centre=(50.8503, 4.3517),
        aliases=("CEMR", "CCRE", "European section of United Cities and Local Governments")),
    Org("platforma", "PLATFORMA", ASSOCIATION, "BE", "Brussels", centre=(50.8503, 4.3517)),
    Org("fastiv", "Fastiv", CITY, "UA", "Kyiv Oblast",
        centre=(50.0760, 29.9177), aliases=("Fastov", "Фастів")),
    Org("fastiv-hospital", "Fastiv hospital", HOSPITAL, "UA", "Kyiv Oblast",
        centre=(50.0760, 29.9177)),
    Org("druskininkai", "Druskininkai", CITY, "LT", "Alytus County",
        centre=(54.0157, 23.9712), aliases=("Druskininkai municipality", "Druskieniki")),
]  # fmt: skip
