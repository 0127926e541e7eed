"""Every upstream event a consumer applies lands in a copy `twinaid audit compare` rebuilds."""

from __future__ import annotations

import importlib

from services.audit import copies
from shared.settings import SERVICES


def test_each_subscription_handler_is_rebuilt_by_a_copy_of_the_same_upstream() -> None:
    for service in SERVICES:
        module = f"services.{service}.subscriptions"
        handlers = (
            getattr(importlib.import_module(module), "HANDLERS", {})
            if service != "registry"
            else {}
        )
        rebuilt = {
            (c.upstream, event_type)
            for c in copies.COPIES.get(service, ())
            for event_type in c.handlers
        }
        consumed = {(upstream, t) for upstream, types in handlers.items() for t in types}
        assert consumed == rebuilt, (service, consumed ^ rebuilt)
