"""Composition root of the shipments API: `uvicorn --factory services.shipments.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.shipments import api, handlers, projections
from shared import db, directory, web
from shared.settings import Settings

SERVICE = "shipments"


def create_app(settings: Settings | None = None) -> FastAPI:
    return web.create_app(
        service=SERVICE,
        settings=settings or Settings(),
        routers=api.ROUTERS,
        handlers=handlers.HANDLERS,
        projections=projections.ALL,
        schema=[directory.SCHEMA, db.schema_text("services.shipments")],
        title="twinaid shipments",
        description="Convoys from committed pledges to proof of delivery, tracked live.",
    )
