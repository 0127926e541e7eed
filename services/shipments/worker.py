"""Composition root of the shipments worker: `python -m services.shipments.worker`."""

from __future__ import annotations

from services.shipments import subscriptions
from shared import db, worker


def main() -> None:
    worker.main(
        service="shipments",
        schema=[db.schema_text("services.shipments")],
        handlers=subscriptions.HANDLERS,
    )


if __name__ == "__main__":
    main()
