"""Composition root of the registry worker: `python -m services.registry.worker`."""

from __future__ import annotations

from services.registry import privacy, subscriptions, webhook_access
from shared import db, worker


def main() -> None:
    worker.main(
        service="registry",
        schema=[db.schema_text("services.registry")],
        handlers=subscriptions.HANDLERS,
        webhook_access=webhook_access.seen,
        retention_due=privacy.RETENTION_DUE,
    )


if __name__ == "__main__":
    main()
