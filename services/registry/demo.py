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


# Kharkiv's municipal medical warehouse received Lille's convoy (services/shipments/demo_data.py)
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


# The partnerships, with the state the articles give them. Dates: a year or month becomes its
# first day, UTC; where the article gives none, the first day of the month it was published in
# (a stand-in the evidence note owns up to).
LILLE_SOURCE = "kharkiv-lille-generators-medicines.txt"
LEEDS_SOURCE = "leeds-kharkiv-partnership.txt"
WAVE_SOURCE = "ukraine-sister-cities-2022.txt"
CEMR_SOURCE = "fastiv-druskininkai-bridges-of-trust.txt"

TWINNING = "twinning"
SISTER_CITY = "sister_city"
COOPERATION = "cooperation_agreement"
PROGRAMME = "programme_partnership"
FRIENDSHIP = "friendship"


def _utc(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


# Leeds: Russia invaded "earlier this year in February" and vans left "back in March": April
# 2022 at the earliest. The 2022 wave: its latest dated events are in August 2022.
LEEDS_PUBLISHED = _utc(2022, 4)
LEEDS_UNDATED = "the article gives no date; April 2022, the earliest month it can be from"
WAVE_PUBLISHED = _utc(2022, 8)
WAVE_UNDATED = "the article gives no date; August 2022, the month it was published in"


class Step(NamedTuple):
    to: str
    occurred_at: datetime
    quotes: tuple[str, ...]  # verbatim from the article
    undated: str | None = None  # why this date, when the article gives none

    def evidence(self, reference: str) -> dict[str, str]:
        note = " … ".join(self.quotes)
        if self.undated:
            note = f"{note} (date: {self.undated})"
        return {"reference": reference, "note": note}


class Partnership(NamedTuple):
    partnership_id: str
    organisations: tuple[str, str]
    kind: str
    source: str
    history: tuple[Step, ...]  # from "proposed" to the state the article gives
    fields: tuple[str, ...] = ()
    programme: str | None = None
    phase: str | None = None

    @property
    def status(self) -> str:
        return self.history[-1].to

    def proposal(self) -> dict[str, Any]:
        mooted = self.history[0]
        return {
            "partnership_id": self.partnership_id,
            "organisations": list(self.organisations),
            "kind": self.kind,
            "programme": self.programme,
            "phase": self.phase,
            "fields": list(self.fields),
            "occurred_at": mooted.occurred_at.isoformat(),
            "evidence": mooted.evidence(self.source),
        }

    def transition(self, step: Step) -> dict[str, Any]:
        return {
            "to": step.to,
            "occurred_at": step.occurred_at.isoformat(),
            "evidence": step.evidence(self.source),
        }


def _signed(
    partnership_id: str,
    organisations: tuple[str, str],
    kind: str,
    source: str,
    at: datetime,
    quote: str,
    undated: str | None = None,
    fields: tuple[str, ...] = (),
) -> Partnership:
    """Known only as made: proposed and signed at the one date the article allows."""
    step = Step("proposed", at, (quote,), undated)
    return Partnership(
        partnership_id,
        organisations,
        kind,
        source,
        (step, step._replace(to="signed")),
        fields,
    )


_KHARKIV_TWINS = (
    "The city of Kharkiv currently shares twin city status with both the French city of Lille"
    " and Czech Republic\u2019s Brno, two of Leeds\u2019s own twin cities."
)
_KYIV = (
    "Thus, since the beginning of the full-scale invasion, Paris, Hamburg and Madrid became"
    " Kyiv\u2019s new sister cities."
)
_CHERNIVTSI = "Chernivtsi has got three new sister cities, Dusseldorf, Mannheim and Metz."
_KHARKIV_CHERNIHIV_RIVNE = (
    "Kharkiv ensured the support of Lublin, Chernihiv twinned with Rzeszów, and Rivne became"
    " sister cities with Federal Way."
)
_BOURGES_ZHYTOMYR_POPRAD = (
    "Bourges twinned with Korosten, Gdynia and Pardubice are now sister cities of Zhytomyr,"
    " and Poprád offered cooperation to Uzhhorod."
)

PARTNERSHIPS: list[Partnership] = [
    # Lille and Kharkiv
    _signed(
        "lille-kharkiv-twinning",
        ("lille", "kharkiv"),
        TWINNING,
        LILLE_SOURCE,
        _utc(1978),
        "Iuor Terekhov, the mayor of the Ukrainian city of Kharkiv, twinned with Lille since 1978.",
        fields=("humanitarian_aid", "health_and_rehabilitation", "energy"),
    ),
    # Leeds and Kharkiv; the twinnings the Leeds article names on the way
    Partnership(
        "leeds-kharkiv-twinning",
        ("leeds", "kharkiv"),
        TWINNING,
        LEEDS_SOURCE,
        (
            Step(
                "proposed",
                LEEDS_PUBLISHED,
                (
                    "Plans for the city to forge a potential new international partnership"
                    " between Leeds and the city of Kharkiv is being discussed by Leeds City"
                    " Council.",
                ),
                LEEDS_UNDATED,
            ),
            Step(
                "under_discussion",
                LEEDS_PUBLISHED,
                (
                    "The two cities, which sit more than 2,0000 apart, could be potentially"
                    " twinned after a meeting with local councillors in Leeds yesterday.",
                ),
                LEEDS_UNDATED,
            ),
        ),
        fields=("humanitarian_aid",),
    ),
    _signed(
        "kharkiv-brno-twinning",
        ("kharkiv", "brno"),
        TWINNING,
        LEEDS_SOURCE,
        LEEDS_PUBLISHED,
        _KHARKIV_TWINS,
        "the article gives no signing date, only that it holds in April 2022 at the earliest",
    ),
    _signed(
        "leeds-lille-twinning",
        ("leeds", "lille"),
        TWINNING,
        LEEDS_SOURCE,
        LEEDS_PUBLISHED,
        _KHARKIV_TWINS,
        "the article gives no signing date, only that it holds in April 2022 at the earliest",
    ),
    _signed(
        "leeds-brno-twinning",
        ("leeds", "brno"),
        TWINNING,
        LEEDS_SOURCE,
        LEEDS_PUBLISHED,
        _KHARKIV_TWINS,
        "the article gives no signing date, only that it holds in April 2022 at the earliest",
    ),
    # The 2022 wave of new sister cities
    *(
        _signed(
            f"kyiv-{partner}-sister-city",
            ("kyiv", partner),
            SISTER_CITY,
            WAVE_SOURCE,
            WAVE_PUBLISHED,
            _KYIV,
            WAVE_UNDATED,
        )
        for partner in ("paris", "hamburg", "madrid")
    ),
    *(
        _signed(
            f"chernivtsi-{partner}-sister-city",
            ("chernivtsi", partner),
            SISTER_CITY,
            WAVE_SOURCE,
            WAVE_PUBLISHED,
            _CHERNIVTSI,
            WAVE_UNDATED,
        )
        for partner in ("dusseldorf", "mannheim", "metz")
    ),
    # "ensured the support of": no twinning and no signature claimed, so a friendship agreed on
    Partnership(
        "kharkiv-lublin-friendship",
        ("kharkiv", "lublin"),
        FRIENDSHIP,
        WAVE_SOURCE,
        (
            Step("proposed", WAVE_PUBLISHED, (_KHARKIV_CHERNIHIV_RIVNE,), WAVE_UNDATED),
            Step("agreed", WAVE_PUBLISHED, (_KHARKIV_CHERNIHIV_RIVNE,), WAVE_UNDATED),
        ),
    ),
    _signed(
        "chernihiv-rzeszow-twinning",
        ("chernihiv", "rzeszow"),
        TWINNING,
        WAVE_SOURCE,
        WAVE_PUBLISHED,
        _KHARKIV_CHERNIHIV_RIVNE,
        WAVE_UNDATED,
    ),
    _signed(
        "rivne-federal-way-sister-city",
        ("rivne", "federal-way"),
        SISTER_CITY,
        WAVE_SOURCE,
        WAVE_PUBLISHED,
        _KHARKIV_CHERNIHIV_RIVNE,
        WAVE_UNDATED,
    ),
    _signed(
        "bourges-korosten-twinning",
        ("bourges", "korosten"),
        TWINNING,
        WAVE_SOURCE,
        WAVE_PUBLISHED,
        _BOURGES_ZHYTOMYR_POPRAD,
        WAVE_UNDATED,
    ),
    *(
        _signed(
            f"zhytomyr-{partner}-sister-city",
            ("zhytomyr", partner),
            SISTER_CITY,
            WAVE_SOURCE,
            WAVE_PUBLISHED,
            _BOURGES_ZHYTOMYR_POPRAD,
            WAVE_UNDATED,
        )
        for partner in ("gdynia", "pardubice")
    ),
    # offered, not (yet) taken up
    Partnership(
        "poprad-uzhhorod-cooperation",
        ("poprad", "uzhhorod"),
        COOPERATION,
        WAVE_SOURCE,
        (Step("proposed", WAVE_PUBLISHED, (_BOURGES_ZHYTOMYR_POPRAD,), WAVE_UNDATED),),
    ),
    _signed(
        "mississippi-khmelnytskyi-region-twinning",
        ("mississippi", "khmelnytskyi-region"),
        TWINNING,
        WAVE_SOURCE,
        _utc(2022, 5),
        "In May, the state of Mississippi, US, twinned with the Khmelnytskyi region.",
    ),
    _signed(
        "bucha-bergamo-twinning",
        ("bucha", "bergamo"),
        TWINNING,
        WAVE_SOURCE,
        _utc(2022, 6),
        "In June 2022, the Twinning Pact was signed by the cities of Bucha and Bergamo (Italy).",
    ),
    Partnership(
        "irpin-miami-twinning",
        ("irpin", "miami"),
        TWINNING,
        WAVE_SOURCE,
        tuple(
            Step(
                status,
                WAVE_PUBLISHED,
                (
                    "The Irpin City Council and the municipality of Miami, US, have recently"
                    " decided to twin officially.",
                    "The agreement is to be signed.",
                ),
                WAVE_UNDATED,
            )
            for status in ("proposed", "agreed")
        ),
    ),
    _signed(
        "chortkiv-talsi-twinning",
        ("chortkiv", "talsi"),
        TWINNING,
        WAVE_SOURCE,
        _utc(2022, 8),
        "In August 2022, the Chortkiv municipality of the Ternopil region officially twinned"
        " with the city of Talsi, Latvia.",
    ),
    _signed(
        "bucha-bergisch-gladbach-cooperation",
        ("bucha", "bergisch-gladbach"),
        COOPERATION,
        WAVE_SOURCE,
        _utc(2022, 8),
        "The Ukrainian city of Bucha and the German city of Bergisch Gladbach signed a"
        " cooperation agreement in August.",
    ),
    # CEMR's Bridges of Trust: partners since November 2021, met in person in October 2022 to
    # discuss a joint project; nothing signed is reported. The phase is where the article
    # leaves them.
    Partnership(
        "fastiv-druskininkai-bridges-of-trust",
        ("fastiv", "druskininkai"),
        PROGRAMME,
        CEMR_SOURCE,
        (
            Step(
                "proposed",
                _utc(2021, 11),
                (
                    "The two partners first met in November 2021 through the Bridges of Trust"
                    " project, implemented by CEMR, PLATFORMA and supported by the U-LEAD with"
                    " Europe programme.",
                ),
            ),
            Step(
                "under_discussion",
                _utc(2022, 10, 3),
                (
                    "On 3-7 October 2022, a delegation from Fastiv municipality in Kyiv region"
                    " traveled to Lithuania to visit their Bridges of Trust partner-municipality"
                    " Druskininkai.",
                    "discuss the possibility of a joint project in the field of rehabilitation"
                    " and the future of the cooperation.",
                ),
            ),
        ),
        fields=("health_and_rehabilitation", "education", "youth_and_sport", "governance"),
        programme="Bridges of Trust",
        phase="exploring EU funding for a joint healthcare and rehabilitation project",
    ),
]

# Forward order; a partnership suspended or ended since is not the demo's to undo.
FORWARD = ("proposed", "under_discussion", "agreed", "signed")


class Summary(NamedTuple):
    organisations_registered: int
    organisations_present: int
    partnerships_proposed: int
    partnerships_present: int
    status_changes: int
    left_alone: tuple[str, ...]  # suspended or ended since: not moved
    # present without coordinates (registered by a demo that had none): given them now
    organisations_located: int = 0


# a 429 is waited out this many times before it counts as a refusal
RATE_LIMITED_RETRIES = 10


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def idempotency_key(body: dict[str, Any]) -> str:
    # Tied to the body: a retry replays the first answer; edited demo data gets a new key
    # (and a 409 if the organisation exists already) instead of a reused-key error.
    return f"demo-organisation-{body['organisation_id']}-{_digest(body)}"


def _keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def _refused(what: str, response: httpx.Response) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError(
        f"{what}: {response.status_code} {response.text}",
        request=response.request,
        response=response,
    )


async def _send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a 429 (the key's rate limit: nothing was done) is waited out as its
    Retry-After says, then sent again."""
    for _ in range(RATE_LIMITED_RETRIES):
        response = await client.request(method, url, **kwargs)
        if response.status_code != 429:
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def _replayed(response: httpx.Response) -> bool:
    return bool(response.headers.get("Idempotent-Replayed") == "true")


async def load_organisations(client: httpx.AsyncClient) -> tuple[int, int, int]:
    """Register every organisation; returns (newly registered, already present, present
    without coordinates and given them: `_locate`).

    Raises httpx.HTTPStatusError on any answer other than 201 or 409.
    """
    registered = present = located = 0
    for org in ORGANISATIONS:
        body = org.body()
        response = await _send(
            client, "POST", "/v1/organisations", json=body, headers=_keyed(idempotency_key(body))
        )
        if response.status_code == 409:
            present += 1
            located += await _locate(client, org)
        elif _replayed(response):
            present += 1
        elif response.status_code == 201:
            registered += 1
        else:
            raise _refused(body["organisation_id"], response)
    return registered, present, located


LOCATED_REASON = "demo data: the centre of the town it is in, from the design sources"


async def _locate(client: httpx.AsyncClient, org: Org) -> bool:
    """An organisation registered by an earlier demo without coordinates gets them (a
    correction); True if it did. One that has coordinates, whatever they are, is left alone,
    and so is a 409 that was not this organisation (a namesake: 404 here)."""
    oid = org.organisation_id
    response = await _send(client, "GET", f"/v1/organisations/{oid}")
    if response.status_code == 404 or org.coordinates is None:
        return False
    if response.status_code != 200:
        raise _refused(oid, response)
    if response.json().get("coordinates") is not None:
        return False
    body = {"coordinates": org.coordinates, "reason": LOCATED_REASON}
    corrected = await _send(
        client,
        "POST",
        f"/v1/organisations/{oid}/corrections",
        json=body,
        headers=_keyed(f"demo-location-{oid}-{_digest(body)}"),
    )
    if corrected.status_code != 200:
        raise _refused(f"{oid} (coordinates)", corrected)
    return not _replayed(corrected)


async def _status(client: httpx.AsyncClient, partnership_id: str) -> str | None:
    response = await _send(client, "GET", f"/v1/partnerships/{partnership_id}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise _refused(partnership_id, response)
    status: str = response.json()["status"]
    return status


async def _load_partnership(client: httpx.AsyncClient, p: Partnership) -> tuple[bool, int, bool]:
    """Propose `p` unless it exists, then make the steps it has not made yet.

    Returns (proposed now, status changes made now, left alone). Raises httpx.HTTPStatusError
    on an answer the demo cannot take as "already done".
    """
    pid = p.partnership_id
    proposed = False
    status = await _status(client, pid)
    if status is None:
        body = p.proposal()
        response = await _send(
            client,
            "POST",
            "/v1/partnerships",
            json=body,
            headers=_keyed(f"demo-partnership-{pid}-{_digest(body)}"),
        )
        if response.status_code == 201:
            proposed = not _replayed(response)
        elif response.status_code != 409:  # 409: proposed meanwhile
            raise _refused(pid, response)
        status = await _status(client, pid)
        if status is None:
            raise _refused(f"{pid} (missing after its proposal)", response)
    changes = 0
    for step in p.history[1:]:
        if status not in FORWARD:
            return proposed, changes, True
        if FORWARD.index(status) >= FORWARD.index(step.to):
            continue
        body = p.transition(step)
        response = await _send(
            client,
            "POST",
            f"/v1/partnerships/{pid}/transitions",
            json=body,
            headers=_keyed(f"demo-partnership-{pid}-{step.to}-{_digest(body)}"),
        )
        if response.status_code == 200:
            changes += not _replayed(response)
            status = step.to
        elif response.status_code == 409:
            # made meanwhile, or refused for another reason (say an active twin): look again
            status = await _status(client, pid)
            if status in FORWARD and FORWARD.index(status) < FORWARD.index(step.to):
                raise _refused(f"{pid} -> {step.to}", response)
        else:
            raise _refused(f"{pid} -> {step.to}", response)
    return proposed, changes, status not in FORWARD


async def load(client: httpx.AsyncClient) -> Summary:
    """Register the organisations, then the partnerships with their histories.

    `client` carries the base URL and a registry_admin key. Raises httpx.HTTPStatusError on any
    refusal other than "already there".
    """
    registered, present, located = await load_organisations(client)
    proposed = already = changes = 0
    left_alone: list[str] = []
    for partnership in PARTNERSHIPS:
        new, moved, left = await _load_partnership(client, partnership)
        proposed += new
        already += not new
        changes += moved
        if left:
            left_alone.append(partnership.partnership_id)
    return Summary(registered, present, proposed, already, changes, tuple(left_alone), located)


async def _load_from(url: str, key: str) -> Summary:
    async with httpx.AsyncClient(
        base_url=url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        return await load(client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.registry.demo", description=__doc__)
    parser.add_argument("--url", required=True, help="the registry API, http://host:port")
    parser.add_argument("--key", required=True, help="an API key with the registry_admin role")
    args = parser.parse_args(argv)
    try:
        summary = asyncio.run(_load_from(args.url, args.key))
    except httpx.HTTPError as exc:
        print(f"registry demo data failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"registry: {summary.organisations_registered} organisations registered,"
        f" {summary.organisations_present} already present"
        + (
            f", {summary.organisations_located} given their coordinates"
            if summary.organisations_located
            else ""
        )
    )
    print(
        f"registry: {summary.partnerships_proposed} partnerships proposed,"
        f" {summary.partnerships_present} already present,"
        f" {summary.status_changes} status changes"
    )
    if summary.left_alone:
        print(f"registry: suspended or ended since, left alone: {', '.join(summary.left_alone)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
