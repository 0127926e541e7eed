"""Composition root of the shipments worker: `python -m services.shipments.worker`."""

from __future__ import annotations

from pathlib import Path

from services.shipments import privacy, subscriptions, webhook_access
from shared import db, directory, worker

SERVICES = Path(__file__).resolve().parent.parent


def main() -> None:
    worker.main(
        service="shipments",
        schema=[directory.SCHEMA, db.schema_text("services.shipments")],
        handlers=subscriptions.HANDLERS,
        # the published contract of each upstream: services/<upstream>/schemas
        contracts={u: SERVICES / u / "schemas" for u in subscriptions.HANDLERS},
        webhook_access=webhook_access.seen,
        # drivers, escorts and receivers of convoys closed or cancelled longer ago than that
        retention_due=privacy.RETENTION_DUE,
    )


if __name__ == "__main__":
    main()
