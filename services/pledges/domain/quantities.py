"""Quantities: exact decimals with a unit from a closed list, never floats in arithmetic."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum

from shared.domain_checks import invalid
from shared.event_models import MAX_PLACES, MAX_QUANTITY, decimal_places
from shared.event_models import decimal_text as fmt  # the canonical JSON string

__all__ = [
    "MAX_PLACES",
    "MAX_QUANTITY",
    "ZERO",
    "Unit",
    "comparable",
    "convert",
    "fmt",
    "fmt_or_none",
    "parse",
    "parse_or_none",
    "require_quantity",
]

ZERO = Decimal(0)
# MAX_QUANTITY, MAX_PLACES: shared/event_models.py, the one rule of what pledges commits and
# shipments loads and delivers


class Unit(StrEnum):
    PIECES = "pieces"
    KG = "kg"
    TONNES = "tonnes"
    BOXES = "boxes"
    LITRES = "litres"


COUNTED = frozenset({Unit.PIECES, Unit.BOXES})
# units of one dimension, with the factor to the first of them
_MASS = {Unit.KG: Decimal(1), Unit.TONNES: Decimal(1000)}


def parse(text: str | int | Decimal) -> Decimal:
    """A decimal from its JSON form (a string such as "12.5", or an integer)."""
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a decimal number") from exc
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_or_none(text: str | int | Decimal | None) -> Decimal | None:
    """`parse`, or None for an absent value."""
    return None if text is None else parse(text)


def fmt_or_none(value: Decimal | None) -> str | None:
    """`fmt`, or None for an absent value."""
    return None if value is None else fmt(value)


def require_quantity(
    value: Decimal, unit: Unit | str, *, field: str, allow_zero: bool = False
) -> None:
    """Raises ValidationFailed for a zero (unless allowed), negative, too precise or too large
    quantity, or a fraction of a counted unit (pieces, boxes). Exact whatever `value` is: its
    decimal places are counted as written (nothing rounded or flushed to zero), and a refusal
    names it in a few characters at most (fmt)."""
    if value < 0 or (value == 0 and not allow_zero):
        raise invalid(
            f"{field} must be {'greater than' if not allow_zero else 'at least'} zero,"
            f" not {fmt(value)}",
            name=field,
            reason="must be positive" if not allow_zero else "must not be negative",
        )
    if value > MAX_QUANTITY:
        raise invalid(
            f"{field} {fmt(value)} exceeds {fmt(MAX_QUANTITY)}", name=field, reason="too large"
        )
    places = decimal_places(value)
    if places > MAX_PLACES:
        raise invalid(
            f"{field} {fmt(value)} has more than {MAX_PLACES} decimal places",
            name=field,
            reason="too precise",
        )
    if Unit(unit) in COUNTED and places > 0:
        raise invalid(
            f"{field} counts {unit}: {fmt(value)} is not a whole number",
            name=field,
            reason="not a whole number",
        )


def comparable(a: Unit | str, b: Unit | str) -> bool:
    """Whether quantities in `a` and `b` can be added up (the same unit, or both masses)."""
    return Unit(a) == Unit(b) or (Unit(a) in _MASS and Unit(b) in _MASS)


def convert(value: Decimal, source: Unit | str, target: Unit | str) -> Decimal:
    """`value` in `source` expressed in `target`, exactly. Raises ValueError across dimensions."""
    s, t = Unit(source), Unit(target)
    if s == t:
        return value
    if s in _MASS and t in _MASS:
        return value * _MASS[s] / _MASS[t]
    raise ValueError(f"{s.value} cannot be expressed in {t.value}")
