"""Request bodies and parameters of the pledges API: strict, bounded, unknown fields refused.

Quantities are decimals (a JSON string such as "12.5", or an integer); amounts are JSON integers
of minor units: a float is refused, so a fraction of a cent cannot slip in as 1234.5.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    BeforeValidator,
    Field,
    WithJsonSchema,
    model_validator,
)

from services.pledges import domain
from shared import instants, json_body
from shared.deps import IfMatch as IfMatch  # the routes import it from here
from shared.event_models import MAX_QUANTITY_TEXT, decimal_places
from shared.free_text import PlainText
from shared.route_params import AsOf as AsOf  # the routes import them from here
from shared.route_params import Body, example
from shared.route_params import Cursor as Cursor
from shared.route_params import Limit as Limit


def _shown(value: Any) -> str:
    """`value` as a refusal quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# the documented pattern of a quantity written as a string (Quantity's schema below): ASCII
# digits with at most one decimal point, no sign, exponent or trailing point ("1e3", "+5", "5."
# and "-5" are refused), blanks around allowed; at most MAX_QUANTITY_TEXT characters
QUANTITY_PATTERN = r"^\s*[0-9]*\.?[0-9]+\s*$"
_DECIMAL = re.compile(QUANTITY_PATTERN)
_EXPONENT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+")


def _not_a_quantity_text(value: str) -> str:
    """Why a string is not a quantity as documented (QUANTITY_PATTERN, MAX_QUANTITY_TEXT)."""
    text = value.strip()
    why = f"digits and at most one decimal point, up to {MAX_QUANTITY_TEXT} characters"
    if text[:1] == "-" and _DECIMAL.fullmatch(text[1:]):
        why = "a quantity must not be negative"
    elif text[:1] == "+":
        why = "write it without a sign"
    elif "e" in text.lower() and _EXPONENT.fullmatch(text):
        why = 'write it in plain digits, without an exponent ("1000", not "1e3")'
    return f'{_shown(value)} is not a decimal number such as "12.5" ({why})'


def _quantity(value: Any) -> Any:
    """A JSON number or decimal string as an exact Decimal, in the bounds of every quantity
    (quantities.MAX_QUANTITY, MAX_PLACES): whatever its exponent or number of digits, a value
    beyond them is refused here, counted exactly, never rounded or flushed to zero. A JSON
    number is taken as written (shared/json_body.py), never through its float; a string follows
    the documented pattern (QUANTITY_PATTERN)."""
    if isinstance(value, bool):
        raise ValueError('a quantity is a decimal such as "12.5", not a boolean')
    if isinstance(value, str):
        # Decimal() would also read "1_000", "1e3", "+5" and digits of other scripts, and store
        # them changed: a quantity string is written in ASCII digits, as documented
        if len(value) > MAX_QUANTITY_TEXT or not _DECIMAL.fullmatch(value):
            raise ValueError(_not_a_quantity_text(value))
        value = value.strip()
    if isinstance(value, float):
        value = json_body.written(value)
    if not isinstance(value, int | str | Decimal):
        return value
    try:
        parsed = Decimal(value)
    except InvalidOperation as exc:  # an exponent past what Decimal holds
        raise ValueError(f'{_shown(value)} is not a decimal number such as "12.5"') from exc
    if not parsed.is_finite():
        raise ValueError(f"{_shown(value)} is not a finite number")
    most = domain.quantities.MAX_QUANTITY
    if parsed.copy_abs() > most:  # exact, as the comparison (abs() would round and overflow)
        raise ValueError(
            f"exceeds {domain.quantities.fmt(most)}" if parsed > 0 else "must not be negative"
        )
    if decimal_places(parsed) > domain.quantities.MAX_PLACES:
        raise ValueError(f"has more than {domain.quantities.MAX_PLACES} decimal places")
    return parsed


MAX_MINOR_UNITS = 2**53 - 1  # RFC 8785 (and JavaScript) represent integers exactly up to this


def _minor_units(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        # is_integer(), not int(): a JSON 1e400 reads as an infinity, which int() cannot take
        if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            raise ValueError(
                f"{value!r} has a fraction of a minor unit: amounts are integers of minor units"
                " (cents for EUR, pence for GBP)"
            )
        raise ValueError(
            f"{value!r} is not an integer: amounts are JSON integers of minor units (cents for"
            " EUR, pence for GBP)"
        )
    if abs(value) > MAX_MINOR_UNITS:
        raise ValueError(
            f"{value} is too large: JSON carries integers exactly only up to {MAX_MINOR_UNITS:,}"
            " minor units"
        )
    return value


# as documented: the parser takes a JSON number or a decimal string within the bounds of every
# quantity; the domain then checks it for its field (sign, whole pieces) with a 422 naming it
Quantity = Annotated[
    Decimal,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 1e12},
                {
                    "type": "string",
                    "maxLength": MAX_QUANTITY_TEXT,
                    "pattern": QUANTITY_PATTERN,
                },
            ],
            "description": 'a decimal quantity: a JSON number or a string such as "12.5"',
        }
    ),
]
MinorUnits = Annotated[
    int,
    BeforeValidator(_minor_units),
    WithJsonSchema(
        {
            "type": "integer",
            "format": "int64",
            "minimum": -MAX_MINOR_UNITS,
            "maximum": MAX_MINOR_UNITS,
            "description": "an amount in minor units (cents for EUR, pence for GBP)",
        }
    ),
]
Currency = Annotated[str, Field(min_length=1, max_length=8, description="ISO 4217, e.g. EUR")]
Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Text = Annotated[str, Field(min_length=1, max_length=2000), PlainText]
Note = Annotated[str | None, Field(max_length=4000), PlainText]
Reason = Annotated[str, Field(min_length=1, max_length=1000), PlainText]
RecordId = Annotated[str, Path(min_length=1, max_length=100)]
HISTORY_PAGE = 500  # the default page of a need's or pledge's history
HISTORY_MAX = 1000
# a record's history, version-ordered as the audit history: `after` a version, `limit` events
After = Annotated[int, Query(ge=0, le=2**31 - 1, description="the version to read after")]
HistoryLimit = Annotated[int, Query(ge=1, le=HISTORY_MAX)]
NeedStatus = Literal["open", "partly_covered", "covered", "closed", "cancelled"]


class ContactIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=200), PlainText]
    role: Annotated[str | None, Field(max_length=100), PlainText] = None
    email: Annotated[
        str | None, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), PlainText
    ] = None
    phone: Annotated[str | None, Field(max_length=50), PlainText] = None


class NeedIn(Body):
    model_config = example(
        {
            "need_id": "kharkiv-generators-2023",
            "kind": "item",
            "category": "generators",
            "description": "Medium generators for heating points and water pumping",
            "quantity": "100",
            "unit": "pieces",
            "priority": "critical",
            "serves": ["heating", "water"],
        }
    )

    need_id: Slug | None = None
    recipient_id: Slug | None = Field(default=None, description="default: your organisation")
    kind: domain.NeedKind
    category: domain.Category
    description: Text
    quantity: Quantity | None = None
    unit: domain.quantities.Unit | None = None
    amount: MinorUnits | None = None
    currency: Currency | None = None
    priority: domain.Priority = domain.Priority.NORMAL
    serves: Annotated[list[domain.Serves], Field(max_length=11)] = []
    deadline: instants.PlanDate | None = None
    occurred_at: instants.PastInstant | None = None
    internal_note: Note = None
    contact: ContactIn | None = None


class NeedRevisionIn(Body):
    """Give only the fields that change, and why."""

    model_config = example({"quantity": "120", "reason": "two more heating points opened"})

    description: Text | None = None
    quantity: Quantity | None = None
    amount: MinorUnits | None = None
    priority: domain.Priority | None = None
    serves: Annotated[list[domain.Serves] | None, Field(max_length=11)] = None
    deadline: instants.PlanDate | None = None
    internal_note: Note = None
    reason: Reason
    occurred_at: instants.PastInstant | None = None


class EndIn(Body):
    model_config = example({"reason": "covered by Lille's convoy of March 2023"})

    reason: Reason
    occurred_at: instants.PastInstant | None = None


class MoneyIn(Body):
    amount: MinorUnits
    currency: Currency


class LineIn(Body):
    line_id: Slug | None = Field(default=None, description="default: 1, 2, 3 in order")
    kind: domain.LineKind
    need_id: Slug | None = None
    item: Annotated[str, Field(min_length=1, max_length=200), PlainText]
    category: domain.Category
    quantity: Quantity | None = None
    unit: domain.quantities.Unit | None = None
    weight_kg: Quantity | None = None
    estimated_value: MoneyIn | None = None
    amount: MinorUnits | None = None
    currency: Currency | None = None


class PledgeIn(Body):
    model_config = example(
        {
            "pledge_id": "lille-kharkiv-generators-2023",
            "recipient_id": "kharkiv",
            "partnership_id": "lille-kharkiv-twinning",
            "description": "Generators bought on the municipal budget",
            "lines": [
                {
                    "line_id": "generators",
                    "kind": "in_kind",
                    "need_id": "kharkiv-generators-2023",
                    "item": "Medium generator 5 kVA",
                    "category": "generators",
                    "quantity": "50",
                    "unit": "pieces",
                    "weight_kg": "4750",
                    "estimated_value": {"amount": 5000000, "currency": "EUR"},
                }
            ],
            "commit": True,
        }
    )

    pledge_id: Slug | None = None
    donor_id: Slug | None = Field(default=None, description="default: your organisation")
    recipient_id: Slug
    partnership_id: Slug | None = None
    description: Annotated[str | None, Field(max_length=2000), PlainText] = None
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=domain.MAX_LINES)]
    commit: bool = Field(default=False, description="make it binding at once")
    occurred_at: instants.PastInstant | None = None
    internal_note: Note = None
    contact: ContactIn | None = None


class CommitIn(Body):
    model_config = example({"occurred_at": "2023-02-20T09:00:00Z"})

    occurred_at: instants.PastInstant | None = None


class AmendIn(Body):
    """The new quantity (an in-kind line) or amount (a money line), and why."""

    model_config = example({"quantity": "45", "reason": "five generators went to Bucha instead"})

    quantity: Quantity | None = None
    amount: MinorUnits | None = None
    reason: Reason
    occurred_at: instants.PastInstant | None = None

    @model_validator(mode="after")
    def _one_figure(self) -> AmendIn:
        if (self.quantity is None) == (self.amount is None):
            raise ValueError("give either the new quantity (in kind) or the new amount (money)")
        return self

    @property
    def size(self) -> Decimal | int:
        return self.quantity if self.quantity is not None else int(self.amount or 0)


class ReceiptIn(Body):
    model_config = example(
        {
            "amount": 10000000,
            "currency": "EUR",
            "received_on": "2023-03-15",
            "reference": "donation call, second convoy",
        }
    )

    amount: MinorUnits
    currency: Currency
    received_on: instants.PastDate
    reference: Annotated[str, Field(min_length=1, max_length=200), PlainText]
    occurred_at: instants.PastInstant | None = None


class DonorFigureIn(Body):
    """Your cumulative figure: delivered so far (in kind) or paid so far (money)."""

    model_config = example(
        {
            "reported_on": "2023-03-20",
            "quantity": "50",
            "note": "all delivered by our count",
        }
    )

    quantity: Quantity | None = None
    amount: MinorUnits | None = None
    currency: Currency | None = None
    reported_on: instants.PastDate
    note: Note = None
    occurred_at: instants.PastInstant | None = None
