"""The refusals a convoy's rules can give, each with its HTTP status and problem type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.domain_checks import invalid as invalid
from shared.errors import Conflict, ValidationFailed

if TYPE_CHECKING:
    from services.shipments.domain.model import Convoy

__all__ = [
    "ConvoyClosed",
    "DeliveryArithmetic",
    "EmptyConvoy",
    "EntryIdReused",
    "ExceedsRemaining",
    "LoadBeforeCommitment",
    "ManifestFull",
    "NotLoadable",
    "Overweight",
    "WrongStatus",
    "invalid",
    "status_forbids",
    "wrong_status",
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


class ManifestFull(Conflict):
    type_slug = "manifest-full"
    title = "The convoy carries as many manifest lines as a delivery can give"


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


def wrong_status(
    state: Convoy,
    detail: str,
    *,
    entry_id: str | None = None,
    error: type[WrongStatus] = WrongStatus,
) -> WrongStatus:
    """A refusal for the convoy's status: the problem names it (`current_status`), and the
    field entry refused (`entry_id`) when one was."""
    status = {"current_status": state.status.value}
    return error(detail, extra=status if entry_id is None else {"entry_id": entry_id, **status})


def status_forbids(state: Convoy, why: str, *, entry_id: str | None = None) -> WrongStatus:
    """wrong_status, read as "convoy <id> is <status>: <why>"."""
    detail = f"convoy {state.convoy_id} is {state.status.value}: {why}"
    return wrong_status(state, detail, entry_id=entry_id)
