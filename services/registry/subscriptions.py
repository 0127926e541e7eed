"""Reactions to other services' events: the registry consumes none (it is the source of the
organisations, partnerships and API keys the others read)."""

from __future__ import annotations

from shared.consumer import Handler

# upstream service -> event type -> handler, as the worker runs them (worker.py): none
HANDLERS: dict[str, dict[str, Handler]] = {}
