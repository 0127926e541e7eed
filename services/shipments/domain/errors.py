"""The refusals a convoy's rules can give, each with its HTTP status and problem type."""

from __future__ import annotations

from shared.errors import Conflict, ValidationFailed

__all__ = [
    "ConvoyClosed",
    "DeliveryArithmetic",
    "EmptyConvoy",
    "EntryIdReused",
    "ExceedsRemaining",
    "LoadBeforeCommitment",
    "NotLoadable",
    "Overweight",
    "WrongStatus",
    "invalid",
]


class WrongStatus(Conflict):
    """The convoy's status does not allow this step now."""

    type_slug = "convoy-status"
    title = "The convoy's status does not allow this"


class ConvoyClosed(WrongStatus):
    type_slug = "convoy-closed"
    title = "The convoy is closed"


class NotLoadable(Conflict):
    type_slug = "pledge-line-not-loadable"
    title = "The pledge line may not be loaded"


class ExceedsRemaining(Conflict):
    type_slug = "exceeds-remaining"
    title = "More than remains on the pledge line"


class LoadBeforeCommitment(Conflict):
    type_slug = "load-before-commitment"
    title = "The load is dated before the pledge line was committed"


class Overweight(Conflict):
    type_slug = "overweight"
    title = "The vehicle would be overweight"


class EmptyConvoy(Conflict):
    type_slug = "empty-convoy"
    title = "The convoy carries nothing"


class EntryIdReused(Conflict):
    type_slug = "entry-id-reused"
    title = "A field entry with this id was recorded with other content"


class DeliveryArithmetic(ValidationFailed):
    type_slug = "delivery-arithmetic"
    title = "Delivered quantities do not add up"


def invalid(detail: str, *, name: str, reason: str) -> ValidationFailed:
    """A 422 naming the offending field, as the edge renders request validation."""
    return ValidationFailed(detail, extra={"invalid_params": [{"name": name, "reason": reason}]})
