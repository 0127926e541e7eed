"""Composition root of the pledges worker: `python -m services.pledges.worker`."""

from __future__ import annotations

from services.pledges import privacy, subscriptions, webhook_access
from shared import service_worker


def main() -> None:
    service_worker.main(
        "pledges", subscriptions.HANDLERS, webhook_access.seen, privacy.RETENTION_DUE
    )


if __name__ == "__main__":
    main()
