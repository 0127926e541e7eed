"""The needs and pledges the articles in the design sources tell of (slugs of the registry demo).

Dates: where an article gives a month, its first day (UTC); where it gives none, the month it
was published in. Figures the articles do not give are stand-ins, and say so in the text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

LILLE_SOURCE = "kharkiv-lille-generators-medicines.txt"
LEEDS_SOURCE = "leeds-kharkiv-partnership.txt"


def _at(year: int, month: int, day: int = 1) -> str:
    return datetime(year, month, day, tzinfo=UTC).isoformat()


# "since the beginning of the war, a year ago" and a convoy "to leave at the beginning of
# March": February 2023.
LILLE_ARTICLE = _at(2023, 2)
JUNE_2022 = _at(2022, 6)
# Leeds: vans left "back in March" 2022: April 2022 at the earliest.
LEEDS_ARTICLE = _at(2022, 4)
MAYOR_KHARKIV = (
    "\u201cAt the moment, we particularly need generators and medicines for our essential"
    " infrastructures\u201d (Ihor Terekhov, mayor of Kharkiv)"
)


class DemoPledge(NamedTuple):
    body: dict[str, Any]
    amendments: tuple[tuple[str, dict[str, Any]], ...] = ()  # (line id, body)
    commit_at: str | None = None
    donor_figures: tuple[tuple[str, dict[str, Any]], ...] = ()
    receipts: tuple[tuple[str, dict[str, Any]], ...] = ()


NEEDS: list[dict[str, Any]] = [
    {
        "need_id": "kharkiv-generators-2023",
        "recipient_id": "kharkiv",
        "kind": "item",
        "category": "generators",
        "description": f"Generators for essential infrastructure. {MAYOR_KHARKIV}. The article"
        " gives no number: 100 is the demo's stand-in.",
        "quantity": "100",
        "unit": "pieces",
        "priority": "critical",
        "serves": ["electricity", "heating", "water", "hospitals"],
        "occurred_at": LILLE_ARTICLE,
    },
    {
        "need_id": "kharkiv-medicines-2023",
        "recipient_id": "kharkiv",
        "kind": "item",
        "category": "medicines",
        "description": f"Medicines for hospitals. {MAYOR_KHARKIV}. The article gives no"
        " quantity: 13 tonnes, the size of Lille's first convoy, is the demo's stand-in.",
        "quantity": "13",
        "unit": "tonnes",
        "priority": "critical",
        "serves": ["hospitals"],
        "deadline": "2023-03-01",
        "occurred_at": LILLE_ARTICLE,
        # who receives the medicines (services/shipments/demo/data.py: she signed for Lille's
        # convoy): personal data, sealed in the log, shown to Kharkiv and auditors only
        "contact": {"name": "Olha Kravchenko", "role": "head of the municipal medical warehouse"},
    },
    {
        "need_id": "kharkiv-antibiotics-2023",
        "recipient_id": "kharkiv",
        "kind": "item",
        "category": "antibiotics",
        "description": "Antibiotics, hard to find: \u201cFrance currently suffering from a"
        " shortage of antibiotics\u201d (Martine Aubry, mayor of Lille). The article gives no"
        " quantity: 2000 boxes is the demo's stand-in.",
        "quantity": "2000",
        "unit": "boxes",
        "priority": "critical",
        "serves": ["hospitals"],
        "occurred_at": LILLE_ARTICLE,
    },
    {
        "need_id": "lille-second-convoy-funding",
        "recipient_id": "lille",
        "kind": "money",
        "category": "medicines",
        "description": "The other half of the second medicine convoy to Kharkiv, leaving at"
        " the beginning of March: \u201cHalf will be provided by the CHU and we need 100,000"
        " euros to finance the other half\u201d (Martine Aubry). A call for donations runs"
        " through the Fondation de Lille.",
        "amount": 10_000_000,
        "currency": "EUR",
        "priority": "high",
        "serves": ["hospitals"],
        "deadline": "2023-03-01",
        "occurred_at": LILLE_ARTICLE,
    },
]

PLEDGES: list[DemoPledge] = [
    DemoPledge(
        body={
            "pledge_id": "lille-kharkiv-generators-2023",
            "donor_id": "lille",
            "recipient_id": "kharkiv",
            "partnership_id": "lille-kharkiv-twinning",
            "description": "Medium-sized generators bought on Lille's municipal budget",
            "lines": [
                {
                    "line_id": "generators",
                    "kind": "in_kind",
                    "need_id": "kharkiv-generators-2023",
                    "item": "Medium-sized generator",
                    "category": "generators",
                    "quantity": "100",
                    "unit": "pieces",
                }
            ],
            "occurred_at": LILLE_ARTICLE,
        },
        amendments=(
            (
                "generators",
                {
                    "quantity": "50",
                    "reason": "\u201cWe have about fifty for the moment\u201d (Martine Aubry)",
                    "occurred_at": LILLE_ARTICLE,
                },
            ),
        ),
        commit_at=LILLE_ARTICLE,
    ),
    DemoPledge(
        body={
            "pledge_id": "lille-kharkiv-medicines-2022-06",
            "donor_id": "lille",
            "recipient_id": "kharkiv",
            "partnership_id": "lille-kharkiv-twinning",
            "description": "The first medicine convoy: \u201ca convoy of 13 tons having been sent"
            " last June, in collaboration with the hospital center (CHU) of Lille\u201d",
            "lines": [
                {
                    "line_id": "medicines",
                    "kind": "in_kind",
                    "item": "Medicines",
                    "category": "medicines",
                    "quantity": "13",
                    "unit": "tonnes",
                    "weight_kg": "13000",
                }
            ],
            "occurred_at": JUNE_2022,
        },
        commit_at=JUNE_2022,
        # Lille says it was sent; what Kharkiv confirmed comes only from shipments.
        donor_figures=(
            (
                "medicines",
                {
                    "quantity": "13",
                    "reported_on": "2022-06-01",
                    "note": "sent last June (Martine Aubry, February 2023)",
                    "occurred_at": LILLE_ARTICLE,
                },
            ),
        ),
    ),
    DemoPledge(
        body={
            "pledge_id": "chu-lille-kharkiv-medicines-2023-03",
            "donor_id": "chu-lille",
            "recipient_id": "kharkiv",
            "partnership_id": "lille-kharkiv-twinning",
            "description": "Half of the second medicine convoy, leaving at the beginning of"
            " March 2023: \u201cHalf will be provided by the CHU\u201d. Half of the demo's"
            " 13-tonne stand-in.",
            "lines": [
                {
                    "line_id": "medicines",
                    "kind": "in_kind",
                    "need_id": "kharkiv-medicines-2023",
                    "item": "Medicines",
                    "category": "medicines",
                    "quantity": "6.5",
                    "unit": "tonnes",
                    "weight_kg": "6500",
                }
            ],
            "occurred_at": LILLE_ARTICLE,
        },
        commit_at=LILLE_ARTICLE,
    ),
    DemoPledge(
        body={
            "pledge_id": "leeds-ukraine-aid-appeal-vans",
            "donor_id": "leeds-charity-lunch",
            "recipient_id": "kharkiv",
            "description": "\u201cBack in March, The Ukraine Aid Appeal, sponsored by the Leeds"
            " Charity Lunch, took two vans over to the country in a week-long trip\u201d. The"
            " article gives no load: 300 boxes of donations stand in, and Kharkiv, the city"
            " Leeds is in talks with, stands in for the destination it does not name.",
            "lines": [
                {
                    "line_id": "vans",
                    "kind": "in_kind",
                    "item": "Donated goods (two vans)",
                    "category": "food",
                    "quantity": "300",
                    "unit": "boxes",
                    "weight_kg": "2400",
                }
            ],
            "occurred_at": "2022-03-01T00:00:00+00:00",
        },
        commit_at="2022-03-01T00:00:00+00:00",
    ),
    DemoPledge(
        body={
            "pledge_id": "leeds-together-for-ukraine-appeal",
            "donor_id": "leeds-community-foundation",
            "recipient_id": "kharkiv",
            "partnership_id": "leeds-kharkiv-twinning",
            "description": "The official Leeds Together for Ukraine appeal, launched by Leeds"
            " City Council and administered by Leeds Community Foundation: \u201cmore than"
            " \u00a3140,000 raised to help refugees forced from their homes\u201d. The article"
            " names no recipient: Kharkiv, the city Leeds is in talks with, stands in.",
            "lines": [
                {
                    "line_id": "appeal",
                    "kind": "money",
                    "item": "Leeds Together for Ukraine appeal",
                    "category": "shelter",
                    "amount": 14_000_000,
                    "currency": "GBP",
                }
            ],
            "occurred_at": LEEDS_ARTICLE,
        },
        commit_at=LEEDS_ARTICLE,
        receipts=(
            (
                "appeal",
                {
                    "amount": 14_000_000,
                    "currency": "GBP",
                    "received_on": "2022-04-01",
                    "reference": "Leeds Together for Ukraine (JustGiving), raised by April 2022",
                    "occurred_at": LEEDS_ARTICLE,
                },
            ),
        ),
    ),
]
