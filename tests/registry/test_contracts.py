"""Event contracts: committed JSON Schemas equal the models, and events obey them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services import cli
from services.registry import events as ev
from shared import contracts


@pytest.mark.parametrize("service", sorted(cli.CONTRACTS))
def test_the_committed_json_schemas_equal_the_event_models(service: str) -> None:
    docs = contracts.documents(
        cli.CONTRACTS[service], topic=f"{service}.events", previous=cli.PREVIOUS[service]
    )
    folder = cli.contract_folder(service)
    committed = {p.name: p.read_text() for p in folder.glob("*.json")}
    assert committed == docs, "run `twinaid contracts` and commit services/*/schemas"


def test_every_registry_event_type_has_a_schema_naming_its_required_fields() -> None:
    folder = cli.contract_folder("registry")
    for event_type, model in ev.SCHEMAS.items():
        doc = json.loads((folder / contracts.file_name(event_type)).read_text())
        assert doc["title"] == event_type
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert set(doc.get("required", [])) == required


def test_an_event_payload_that_breaks_its_contract_is_refused() -> None:
    with pytest.raises(ValidationError):
        ev.OrganisationRegistered(
            organisation_id="x", name="X", kind="municipality", country="France"
        )
    with pytest.raises(ValidationError):
        ev.PartnershipStatusChanged(
            partnership_id="p",
            organisations=["a", "b"],
            kind="twinning",
            from_status="proposed",
            to_status="married",
        )
