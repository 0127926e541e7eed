"""A convoy's state as JSON and back, for snapshots (shared/snapshots.py): decimals as strings,
instants in ISO 8601 with their offset, written field by field as Convoy and its values
declare them (shared/domain_json.py). decode(encode(state)) == state.

FORMAT names the shape: bump it whenever Convoy's fields, or what evolve folds into them, change
(a snapshot of another format is ignored and the convoy folded from its log again). A kept
event's data goes with the schema version it was stored with, so it decodes as it would from
the log (v2: entries and the delivery keep it); its decoded payload is a cache, not written.
v3: the instant the plan or manifest last changed (manifest_changed_at).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.shipments.domain.model import Convoy
from shared.domain_json import from_json, to_json

__all__ = ["FORMAT", "decode", "encode"]

FORMAT = "shipments.convoy.v3"


def encode(state: Convoy) -> dict[str, Any]:
    data: dict[str, Any] = to_json(state)
    return data


def decode(d: Mapping[str, Any]) -> Convoy:
    return from_json(Convoy, d)
