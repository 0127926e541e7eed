"""Composition root of the pledges worker: `python -m services.pledges.worker`."""

from __future__ import annotations

from pathlib import Path

from services.pledges import privacy, subscriptions, webhook_access
from shared import db, directory, worker

SERVICES = Path(__file__).resolve().parent.parent


def main() -> None:
    worker.main(
        service="pledges",
        schema=[directory.SCHEMA, db.schema_text("services.pledges")],
        handlers=subscriptions.HANDLERS,
        # the published contract of each upstream: services/<upstream>/schemas
        contracts={u: SERVICES / u / "schemas" for u in subscriptions.HANDLERS},
        webhook_access=webhook_access.seen,
        retention_due=privacy.RETENTION_DUE,
    )


if __name__ == "__main__":
    main()
