"""Composition root of the registry worker: `python -m services.registry.worker`."""

from __future__ import annotations

from services.registry import privacy, subscriptions, webhook_access
from shared import service_worker


def main() -> None:
    service_worker.main(
        "registry", subscriptions.HANDLERS, webhook_access.seen, privacy.RETENTION_DUE
    )


if __name__ == "__main__":
    main()
