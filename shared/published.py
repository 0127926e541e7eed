"""An upstream's published event contract (services/<upstream>/schemas/*.json), as a consumer
reads it: types, required fields, sizes and ranges enforced; unknown fields allowed (a tolerant
reader: `additionalProperties` is not enforced, so an upstream may add fields). Pure.

A small validator for the keywords the published schemas use (they are generated from the
upstreams' pydantic models): type, required, properties, items, anyOf, oneOf, allOf, $ref to
#/$defs, enum, const, pattern, minimum, maximum, exclusive bounds, min/max length and items.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, ()))


class Contract:
    """The schemas of one upstream: `problem(event_type, schema_version, data)`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._schemas: dict[str, dict[str, Any] | None] = {}

    def schema(self, event_type: str, version: int) -> dict[str, Any] | None:
        name = f"{event_type}.v{version}.json"
        if name not in self._schemas:
            path = self.folder / name
            self._schemas[name] = json.loads(path.read_text()) if path.is_file() else None
        return self._schemas[name]

    def problem(self, event_type: str, version: int, data: Mapping[str, Any]) -> str | None:
        """Why `data` breaks the published schema of its type, if it does. A type the upstream
        publishes no schema for (a checkpoint, a key change) is not checked here."""
        schema = self.schema(event_type, version)
        if schema is None:
            return None
        return _check(schema, data, schema, "data")


def _check(schema: Mapping[str, Any], value: Any, root: Mapping[str, Any], at: str) -> str | None:
    if "$ref" in schema:
        ref = str(schema["$ref"])
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        if (found := _check(target, value, root, at)) is not None:
            return found
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(value, kind) for kind in allowed):
            return f"{at} is not of type {' or '.join(allowed)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{at} is not one of {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        return f"{at} is not {schema['const']!r}"
    for key in ("anyOf", "oneOf"):
        if key in schema and all(_check(s, value, root, at) is not None for s in schema[key]):
            return f"{at} matches none of its allowed shapes"
    for sub in schema.get("allOf", ()):
        if (found := _check(sub, value, root, at)) is not None:
            return found
    if isinstance(value, str):
        return _check_text(schema, value, at)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(schema, value, at)
    if isinstance(value, list):
        return _check_list(schema, value, root, at)
    if isinstance(value, dict):
        return _check_object(schema, value, root, at)
    return None


def _check_text(schema: Mapping[str, Any], value: str, at: str) -> str | None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{at} is longer than {schema['maxLength']} characters"
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"{at} is shorter than {schema['minLength']} characters"
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        return f"{at} does not match {schema['pattern']}"
    return None


def _check_number(schema: Mapping[str, Any], value: float, at: str) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"{at} is below {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{at} is above {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return f"{at} is not above {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        return f"{at} is not below {schema['exclusiveMaximum']}"
    return None


def _check_list(
    schema: Mapping[str, Any], value: list[Any], root: Mapping[str, Any], at: str
) -> str | None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{at} has more than {schema['maxItems']} items"
    if "minItems" in schema and len(value) < schema["minItems"]:
        return f"{at} has fewer than {schema['minItems']} items"
    items = schema.get("items")
    if isinstance(items, dict):
        for n, item in enumerate(value):
            if (found := _check(items, item, root, f"{at}[{n}]")) is not None:
                return found
    return None


def _check_object(
    schema: Mapping[str, Any], value: dict[str, Any], root: Mapping[str, Any], at: str
) -> str | None:
    for name in schema.get("required", ()):
        if name not in value:
            return f"{at}.{name} is missing"
    for name, sub in schema.get("properties", {}).items():
        if name in value and (found := _check(sub, value[name], root, f"{at}.{name}")):
            return found
    return None
