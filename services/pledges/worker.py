"""Composition root of the pledges worker: `python -m services.pledges.worker`."""

from __future__ import annotations

from services.pledges import subscriptions
from shared import db, directory, worker


def main() -> None:
    worker.main(
        service="pledges",
        schema=[directory.SCHEMA, db.schema_text("services.pledges")],
        handlers=subscriptions.HANDLERS,
    )


if __name__ == "__main__":
    main()
