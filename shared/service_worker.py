"""The worker of a service (services/<service>/worker.py) as every service runs it: its schema
(shared/service_schema.py), and the published contract of each upstream it consumes."""

from __future__ import annotations

from collections.abc import Mapping

from shared import published, service_schema, webhooks, worker
from shared.consumer import Handler


def main(
    service: str,
    handlers: Mapping[str, Mapping[str, Handler]],
    webhook_access: webhooks.Access,
    retention_due: str,
) -> None:
    """Run `service`'s worker until SIGTERM or SIGINT: `handlers` {upstream: {event type:
    handler}}, each upstream's events checked against its contract (services/<upstream>/schemas);
    `webhook_access` its read policy for webhook subscribers; `retention_due` its query of the
    persons whose retention ran out."""
    worker.main(
        service=service,
        schema=service_schema.scripts(service),
        handlers=handlers,
        contracts={u: published.service_folder(u) for u in handlers},
        webhook_access=webhook_access,
        retention_due=retention_due,
    )
