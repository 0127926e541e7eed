"""Composition root of the shipments worker: `python -m services.shipments.worker`."""

from __future__ import annotations

from services.shipments import subscriptions
from shared import db, directory, worker


def main() -> None:
    worker.main(
        service="shipments",
        schema=[directory.SCHEMA, db.schema_text("services.shipments")],
        handlers=subscriptions.HANDLERS,
    )


if __name__ == "__main__":
    main()
