"""Composition root of the shipments API: `uvicorn --factory services.shipments.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from shared import db, directory, web
from shared.settings import Settings

SERVICE = "shipments"


def create_app(settings: Settings | None = None) -> FastAPI:
    return web.create_app(
        service=SERVICE,
        settings=settings or Settings(),
        routers=[],
        schema=[directory.SCHEMA, db.schema_text("services.shipments")],
        title="twinaid shipments",
    )
