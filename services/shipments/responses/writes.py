"""What the write routes answer, and the EPCIS export and the board's own answers."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from shared.responses import Out


# a write to a convoy answers its id, status and new version; most add to that (no docstring:
# it would become the schema's description)
class ConvoyChanged(Out):
    convoy_id: str
    status: str
    version: int


class ConvoyCancelledReleased(Out):
    manifest_line_id: str
    pledge_id: str
    line_id: str
    quantity: str | None = None


class ConvoyCancelled(ConvoyChanged):
    released: list[ConvoyCancelledReleased] | None = None


class DeliveryConfirmedDiscrepancie(Out):
    manifest_line_id: str
    pledge_id: str
    line_id: str
    donor_id: str
    item: str
    unit: str
    loaded: str
    received: str
    damaged: str
    short: str
    lost: str


class DeliveryConfirmed(ConvoyChanged):
    outcome: str
    discrepancies: list[DeliveryConfirmedDiscrepancie]


class EntriesRecordedEntry(Out):
    entry_id: str
    kind: str
    event_type: str
    event_id: str
    occurred_at: str
    recorded_at: str


class EntriesRecorded(ConvoyChanged):
    recorded: int
    already_recorded: int
    entries: list[EntriesRecordedEntry]


class LineLoaded(ConvoyChanged):
    manifest_line_id: str
    quantity: str
    weight_kg: str
    remaining_on_pledge_line: str


class LineUnloadedGivenBack(Out):
    convoy_id: str
    manifest_line_id: str
    pledge_id: str
    line_id: str
    quantity: str
    reason: str


class LineUnloaded(ConvoyChanged):
    manifest_line_id: str
    given_back: LineUnloadedGivenBack


class EpcisDocument(Out):
    """An EPCIS 2.0 JSON-LD document (docs/exports.md, "EPCIS"): the convoy's events as GS1
    ObjectEvents, extended with `twinaid:` members."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    context: list[Any] = Field(alias="@context")
    id: str
    type: str
    schemaVersion: str
    creationDate: str
    epcisBody: dict[str, Any]


class BoardConfig(Out):
    """The APIs' browser-facing URLs (`PUBLIC_URLS`), null where not configured."""

    registry: str | None = None
    pledges: str | None = None
    shipments: str | None = None


class WhoAmI(Out):
    key_id: str
    organisation: str
    roles: list[str]
