"""What every service's event models are made of: the base of a payload and its parts, the
bounded identifier, name and label types, decimals as text, coordinates, a sealed person, a
service's models by type, and the upcasters that only keep or drop fields.

One place, because these are one contract: a consumer enforces the bounds through the
published schemas (services/*/schemas/), so an id, a name or a label is bounded alike in
every service's events. Changing a bound here changes those schemas: never lower one below
what an API accepts. Pure: pydantic only, no framework or driver imports.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.codec import Upcaster, unchanged
from shared.sealed import SUBJECT_ID

__all__ = [
    "MAX_DECIMAL_TEXT",
    "MAX_ID",
    "MAX_LABEL",
    "MAX_NAME",
    "MAX_PLACES",
    "MAX_QUANTITY",
    "MAX_QUANTITY_TEXT",
    "MAX_SEALED",
    "QUANTITY_PATTERN",
    "SEALED_BASE64",
    "Coordinates",
    "EventModel",
    "Id",
    "Label",
    "Name",
    "SealedPerson",
    "by_type",
    "decimal_places",
    "decimal_text",
    "quantity_refusal",
    "sealed_field",
    "unchanged",
    "without",
]

MAX_ID = 200
MAX_NAME = 200
MAX_LABEL = 100

Id = Annotated[str, Field(max_length=MAX_ID)]
Name = Annotated[str, Field(max_length=MAX_NAME)]
Label = Annotated[str, Field(max_length=MAX_LABEL)]


# The longest plain text decimal_text writes: far beyond any figure an API accepts (a pledges
# quantity has at most 19 digits), so only a value no check let through is written otherwise.
MAX_DECIMAL_TEXT = 100
_SHOWN_DIGITS = 20  # of such a value's coefficient


def _exact(value: Decimal) -> tuple[str, str, int]:
    """`value` as sign, coefficient without trailing zeros ("" for zero) and the exponent
    that goes with it, exactly: no context's precision or exponent range is involved (as
    normalize() would round to 28 digits, flush a tiny value to zero or overflow a huge one)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite number")
    coefficient = "".join(map(str, digits)).lstrip("0")
    stripped = coefficient.rstrip("0")
    return ("-" if sign else ""), stripped, exponent + len(coefficient) - len(stripped)


def decimal_places(value: Decimal) -> int:
    """How many decimal places a finite `value` needs, counted exactly: trailing zeros do not
    count ("12.500" has 1, "1E+3" none) and nothing is rounded ("1E-999999999" has 999999999)."""
    _, coefficient, exponent = _exact(value)
    return max(0, -exponent) if coefficient else 0


def decimal_text(value: Decimal) -> str:
    """A decimal as events write it (a JSON string): plain digits, no exponent, no trailing
    zeros ("13000", "12.5"), zero as "0"; exact, whatever its number of digits.

    Safe for any Decimal: a value whose plain text would be longer than MAX_DECIMAL_TEXT
    characters (one no check accepts, named in a refusal) is written short in scientific form
    ("1E+999999999"), its coefficient cut to 20 digits and an ellipsis if longer; NaN and the
    infinities as str() writes them."""
    if not value.is_finite():
        return str(value)
    sign, coefficient, exponent = _exact(value)
    if not coefficient:
        return "0"
    point = len(coefficient) + exponent  # digits before the decimal point
    if exponent >= 0:
        length = point
    else:  # "12.5", or "0.0125"
        length = len(coefficient) + 1 if point > 0 else len(coefficient) - point + 2
    if length > MAX_DECIMAL_TEXT:
        shown = coefficient[:_SHOWN_DIGITS] + ("…" if len(coefficient) > _SHOWN_DIGITS else "")
        mantissa = shown[0] + ("." + shown[1:] if len(shown) > 1 else "")
        return f"{sign}{mantissa}E{point - 1:+d}"
    if exponent >= 0:
        return sign + coefficient + "0" * exponent
    if point > 0:
        return f"{sign}{coefficient[:point]}.{coefficient[point:]}"
    return f"{sign}0.{'0' * -point}{coefficient}"


# The one rule of a quantity (a pledged, loaded or delivered amount, a weight), in every service:
# a decimal >= 0, at most MAX_QUANTITY, with at most MAX_PLACES decimal places (trailing zeros
# not counted), written in ASCII digits. What pledges commits, shipments loads and delivers.
MAX_QUANTITY = Decimal(10) ** 12
MAX_PLACES = 6
MAX_QUANTITY_TEXT = 40  # the longest text of a quantity a request may send (leading zeros...)
# every quantity as decimal_text writes it into an event (no trailing zeros, no exponent):
# up to 12 digits and 6 decimal places, or MAX_QUANTITY itself
QUANTITY_PATTERN = r"^([0-9]{1,12}(\.[0-9]{1,6})?|1000000000000)$"


def quantity_refusal(value: Decimal) -> str | None:
    """Why `value` is no quantity (negative, above MAX_QUANTITY, more than MAX_PLACES decimal
    places, not finite), None if it is one; counted exactly (nothing rounded or flushed to
    zero) and quoted short (decimal_text). Zero is a quantity: a field that must be positive
    checks that itself."""
    if not value.is_finite():
        return f"{decimal_text(value)} is not a finite number"
    if value < 0:
        return f"{decimal_text(value)} must not be negative"
    if value > MAX_QUANTITY:
        return f"{decimal_text(value)} exceeds {decimal_text(MAX_QUANTITY)}"
    if decimal_places(value) > MAX_PLACES:
        return f"{decimal_text(value)} has more than {MAX_PLACES} decimal places"
    return None


class EventModel(BaseModel):
    """Base of an event payload and of its parts: frozen, and refusing unknown fields (what
    is written is exactly what the schema says). A payload declares its EVENT_TYPE and, from
    version 2 on, its SCHEMA_VERSION (shared/codec.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    EVENT_TYPE: ClassVar[str]  # its stable dotted name (the codec's key)
    SCHEMA_VERSION: ClassVar[int] = 1  # the version events of the type are written with


class Coordinates(EventModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


def by_type(*models: type[EventModel]) -> dict[str, type[EventModel]]:
    """The models of a service's event types, by the EVENT_TYPE each declares (its current
    model of each type: its published schema)."""
    return {m.EVENT_TYPE: m for m in models}


# base64 of nonce, tag and the personal fields' JSON
MAX_SEALED = 4096
SEALED_BASE64 = r"^[A-Za-z0-9+/]+={0,2}$"


def sealed_field(max_length: int = MAX_SEALED) -> Any:
    """The `sealed` field of a sealed person: base64 of nonce, tag and ciphertext, at most
    `max_length` characters (a service whose persons hold more gives more)."""
    return Field(
        max_length=max_length,
        pattern=SEALED_BASE64,
        description="base64: 12-byte nonce | AES-256-GCM ciphertext of the personal fields",
    )


class SealedPerson(EventModel):
    """A person as the log holds them (shared/privacy.py): the personal fields encrypted under
    the person's own key, which erasure destroys; a subclass's `personal` names them. Other
    fields (a vehicle, a role) stay in clear. Views decrypt it for those who may see personal
    data. A service whose persons hold more widens `sealed` (redeclaring it keeps its place)."""

    subject_id: str = Field(
        max_length=100, pattern=SUBJECT_ID, description="the person as one organisation"
    )
    sealed: str = sealed_field()


def without(*derived: str) -> Upcaster:
    """The upcaster to a next version that no longer carries `derived` values: readers work
    them out from the record's other events."""

    def upcast(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k not in derived}

    return upcast
