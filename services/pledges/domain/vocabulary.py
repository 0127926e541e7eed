"""The closed lists needs and pledges are described with, and who may decide for whom."""

from __future__ import annotations

from enum import StrEnum

from shared.errors import Forbidden

__all__ = ["Category", "NeedKind", "Priority", "Serves", "acting"]


class NeedKind(StrEnum):
    ITEM = "item"
    MONEY = "money"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"


class Category(StrEnum):
    GENERATORS = "generators"
    MEDICINES = "medicines"
    ANTIBIOTICS = "antibiotics"
    MEDICAL_EQUIPMENT = "medical_equipment"
    FOOD = "food"
    WATER = "water"
    SHELTER = "shelter"
    CLOTHING = "clothing"
    HYGIENE = "hygiene"
    FUEL = "fuel"
    VEHICLES = "vehicles"
    EQUIPMENT = "equipment"
    OTHER = "other"


class Serves(StrEnum):
    HOSPITALS = "hospitals"
    HEATING = "heating"
    WATER = "water"
    ELECTRICITY = "electricity"
    SHELTER = "shelter"
    SCHOOLS = "schools"
    TRANSPORT = "transport"
    REFUGEES = "refugees"
    FOOD = "food"
    CIVIL_PROTECTION = "civil_protection"
    OTHER = "other"


def acting(acting_for: str | None, organisation: str, what: str) -> None:
    """A member decides only for its own organisation (`acting_for` None: an administrator,
    who may decide for anyone): Forbidden otherwise."""
    if acting_for is not None and acting_for != organisation:
        raise Forbidden(f"{acting_for} may not {what} for {organisation}")
