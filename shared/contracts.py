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


def version_of(model: type[BaseModel]) -> int:
    """An event model's schema version: its `SCHEMA_VERSION` class attribute, 1 without one.
    Events are written with their type's current version (NewEvent.schema_version)."""
    return int(getattr(model, "SCHEMA_VERSION", 1))


def documents(
    schemas: Mapping[str, type[BaseModel]],
    *,
    topic: str,
    previous: Mapping[tuple[str, int], type[BaseModel]] | None = None,
) -> dict[str, str]:
    """{file name: JSON text} for every event type of one topic: its current version
    (`schemas`) and the older versions still in logs (`previous`, by type and version)."""
    out = {}
    every = {(t, version_of(m)): m for t, m in schemas.items()} | dict(previous or {})
    for (event_type, version), model in sorted(every.items()):
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": published.schema_id(event_type, version),
            "title": event_type,
            "description": f"`data` of a {event_type} event (schema version {version}) on {topic}",
            **model.model_json_schema(),
        }
        schema["title"] = event_type
        out[file_name(event_type, version)] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write(folder: Path, docs: Mapping[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in docs.items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
