"""Event contracts: committed JSON Schemas equal the models; `pledges.pledge-line-updated`
carries exactly the fields docs/cross-service-events.md promises; pledges reads only fields
that contract gives `shipments.delivery-confirmed`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.pledges import events as ev
from services.pledges import subscriptions
from shared import contracts

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "services" / "pledges" / "schemas"
CONTRACT = (ROOT / "docs" / "cross-service-events.md").read_text()


def documented_fields(event_type: str) -> set[str]:
    """The field names inside the first `{...}` after the event type's name in the doc."""
    after = CONTRACT[CONTRACT.index(f"`{event_type}`") :]
    body = after[after.index("`{") + 2 : after.index("}`")]
    body = re.sub(r"\{[^{}]*\}", "", body)  # nested objects: their own fields do not count
    body = re.sub(r"\[[^\[\]]*\]", "", body)
    return {name.split("|")[0].strip() for name in body.split(",") if name.strip()}


def test_the_committed_json_schemas_equal_the_event_models() -> None:
    docs = contracts.documents(ev.SCHEMAS, topic="pledges.events", previous=ev.PREVIOUS)
    committed = {p.name: p.read_text() for p in FOLDER.glob("*.json")}
    assert committed == docs, "regenerate services/pledges/schemas from the models"


def test_every_event_type_has_a_schema_naming_its_required_fields() -> None:
    for event_type, model in ev.SCHEMAS.items():
        version = contracts.version_of(model)
        doc = json.loads((FOLDER / contracts.file_name(event_type, version)).read_text())
        assert doc["title"] == event_type
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert set(doc.get("required", [])) == required
    for (event_type, version), model in ev.PREVIOUS.items():
        assert version < contracts.version_of(ev.SCHEMAS[event_type])
        doc = json.loads((FOLDER / contracts.file_name(event_type, version)).read_text())
        assert doc["title"] == event_type
        assert set(doc.get("required", [])) == {
            n for n, f in model.model_fields.items() if f.is_required()
        }


def test_pledge_line_updated_carries_exactly_the_fields_shipments_relies_on() -> None:
    fields = documented_fields(ev.PLEDGE_LINE_UPDATED)
    assert "remaining" in fields and len(fields) == 13
    assert set(ev.PledgeLineUpdated.model_fields) == fields
    schema = ev.PledgeLineUpdated.model_json_schema()
    assert set(schema["required"]) == fields, "every field present, null where allowed"
    assert schema["properties"]["status"]["enum"] == ["committed", "withdrawn", "fulfilled"]


def test_pledges_reads_only_fields_the_delivery_contract_gives() -> None:
    fields = documented_fields("shipments.delivery-confirmed")
    reader = subscriptions._Delivery.model_fields
    assert set(reader) - {"lines"} <= fields
    line_fields = re.search(r"lines: \[\{([^}]*)\}", CONTRACT)
    assert line_fields is not None
    documented_line = {n.split("|")[0].strip() for n in line_fields.group(1).split(",")}
    assert set(subscriptions._DeliveryLine.model_fields) <= documented_line


def test_an_event_payload_that_breaks_its_contract_is_refused() -> None:
    with pytest.raises(ValidationError):
        ev.PledgeLineUpdated(
            pledge_id="p",
            line_id="1",
            donor_id="lille",
            recipient_id="kharkiv",
            partnership_id=None,
            item="Generator",
            category="generators",
            unit="crates",
            quantity="50",
            weight_kg=None,
            delivered="0",
            remaining="50",
            status="committed",
        )
    with pytest.raises(ValidationError):
        ev.MoneyReceived(
            pledge_id="p",
            line_id="1",
            amount=100.5,
            currency="EUR",  # type: ignore[arg-type]
            received_on="2023-02-01",
            reference="r",
        )
