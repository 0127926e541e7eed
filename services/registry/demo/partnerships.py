"""Demo partnerships from the four articles in the design sources, each with the steps of its
history the article gives and the quotes that show them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

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
    *(
        _signed(
            f"{a}-{b}-twinning",
            (a, b),
            TWINNING,
            LEEDS_SOURCE,
            LEEDS_PUBLISHED,
            _KHARKIV_TWINS,
            "the article gives no signing date, only that it holds in April 2022 at the earliest",
        )
        for a, b in (("kharkiv", "brno"), ("leeds", "lille"), ("leeds", "brno"))
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
