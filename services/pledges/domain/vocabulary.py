"""The closed lists needs and pledges are described with, and a rule every decision shares."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from services.pledges.domain.quantities import invalid

__all__ = ["Category", "NeedKind", "Priority", "Serves", "not_in_future"]


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


def not_in_future(occurred_at: datetime, now: datetime, field: str = "occurred_at") -> None:
    if occurred_at > now:
        raise invalid(
            field,
            "in the future",
            f"{field} {occurred_at.isoformat()} lies in the future: record what already happened",
        )
