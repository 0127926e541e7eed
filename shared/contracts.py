"""Event contracts: one JSON Schema document per event type, generated from its model.

The documents are committed (services/<name>/schemas/) for other teams to read; a test keeps them
equal to the models, so a changed shape cannot slip out without a new schema version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared import published


def file_name(event_type: str, version: int = 1) -> str:
    return f"{event_type}.v{version}.json"


def documents(schemas: Mapping[str, type[BaseModel]], *, topic: str) -> dict[str, str]:
    """{file name: JSON text} for every event type of one topic."""
    out = {}
    for event_type, model in sorted(schemas.items()):
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": published.schema_id(event_type),
            "title": event_type,
            "description": f"`data` of a {event_type} event (schema version 1) on {topic}",
            **model.model_json_schema(),
        }
        schema["title"] = event_type
        out[file_name(event_type)] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write(folder: Path, docs: Mapping[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in docs.items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
