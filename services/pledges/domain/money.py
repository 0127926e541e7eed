"""Money: integers in the minor unit of an ISO 4217 currency, never floats.

The list is ISO 4217's active codes with their minor-unit exponents (funds codes included,
precious metals and testing codes left out: they have no minor unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from shared.domain_checks import invalid

__all__ = [
    "CURRENCIES",
    "MAX_AMOUNT",
    "MAX_RATE",
    "RATE_DIGITS",
    "Rate",
    "convert",
    "format_minor",
    "require_amount",
    "require_currency",
]

MAX_AMOUNT = 10**15
MAX_RATE = 10**6  # one unit of a currency is worth at most a million of another
RATE_DIGITS = 12  # significant digits of a rate

_TWO_PLACES = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN
BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP
LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR
NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN
SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR
ZMW ZWG
"""
_NO_PLACES = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_PLACES = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_PLACES = "CLF UYW"

CURRENCIES: dict[str, int] = {
    **dict.fromkeys(_TWO_PLACES.split(), 2),
    **dict.fromkeys(_NO_PLACES.split(), 0),
    **dict.fromkeys(_THREE_PLACES.split(), 3),
    **dict.fromkeys(_FOUR_PLACES.split(), 4),
}


def require_currency(code: str, *, field: str) -> str:
    """Raises ValidationFailed unless `code` is an active ISO 4217 currency."""
    if code not in CURRENCIES:
        raise invalid(
            f"{field} {code!r} is not an ISO 4217 currency code (such as EUR, GBP, UAH)",
            name=field,
            reason="unknown currency",
        )
    return code


def require_amount(amount: int, *, field: str, allow_zero: bool = False) -> None:
    """Raises ValidationFailed for an amount that is not a positive integer of minor units."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise invalid(
            f"{field} is counted in minor units (cents for EUR): {amount!r} is not an integer",
            name=field,
            reason="not an integer",
        )
    if amount < 0 or (amount == 0 and not allow_zero):
        raise invalid(
            f"{field} must be greater than zero, not {amount}",
            name=field,
            reason="must be positive",
        )
    if amount > MAX_AMOUNT:
        raise invalid(
            f"{field} {amount} exceeds {MAX_AMOUNT} minor units", name=field, reason="too large"
        )


def format_minor(amount: int, currency: str) -> str:
    """Minor units as a decimal string in the major unit: 10000000 EUR -> "100000.00"."""
    places = CURRENCIES[currency]
    if places == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"


@dataclass(frozen=True, slots=True)
class Rate:
    """One unit of `currency` is worth `rate` units of the target currency, on `on`."""

    currency: str
    rate: Decimal
    on: date


_POWERS: dict[int, int] = {places: 10**places for places in set(CURRENCIES.values())}


def convert(amount: int, currency: str, *, target: str, rate: Decimal, field: str = "rate") -> int:
    """Minor units of `currency` in minor units of `target`, rounded half to even, computed
    exactly (integers: no decimal context to overflow, whatever the rate). Raises
    ValidationFailed naming `field` if the figure exceeds MAX_AMOUNT minor units (a figure no
    amount of the service holds), or if the rate is not a finite positive number."""
    if currency == target and rate == 1:
        return amount
    if not rate.is_finite() or rate <= 0:
        raise invalid(f"{field}: a rate is a positive number", name=field, reason="not positive")
    numerator, denominator = rate.as_integer_ratio()
    numerator *= amount * _POWERS[CURRENCIES[target]]
    denominator *= _POWERS[CURRENCIES[currency]]
    whole, rest = divmod(numerator, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and whole % 2):
        whole += 1
    if abs(whole) > MAX_AMOUNT:
        raise invalid(
            f"{field}: {format_minor(amount, currency)} {currency} at {rate} is more than"
            f" {format_minor(MAX_AMOUNT, target)} {target}, the most a report converts",
            name=field,
            reason="converted amount too large",
        )
    return whole
