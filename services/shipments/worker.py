"""Composition root of the shipments worker: `python -m services.shipments.worker`."""

from __future__ import annotations

from services.shipments import privacy, subscriptions, webhook_access
from shared import service_worker


def main() -> None:
    # retention: drivers, escorts and receivers of convoys closed or cancelled longer ago than that
    service_worker.main(
        "shipments", subscriptions.HANDLERS, webhook_access.seen, privacy.RETENTION_DUE
    )


if __name__ == "__main__":
    main()
