"""Reactions to other services' events: {upstream: {event type: handler}}."""

from __future__ import annotations

from shared import directory
from shared.consumer import Handler

HANDLERS: dict[str, dict[str, Handler]] = {
    "registry": dict(directory.HANDLERS),
    "shipments": {},
}
