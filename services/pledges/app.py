"""Composition root of the pledges API: `uvicorn --factory services.pledges.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.pledges import api, handlers, projections
from shared import db, directory, web
from shared.settings import Settings

SERVICE = "pledges"


def create_app(settings: Settings | None = None) -> FastAPI:
    return web.create_app(
        service=SERVICE,
        settings=settings or Settings(),
        routers=api.routers,
        handlers=handlers.HANDLERS,
        projections=projections.ALL,
        schema=[directory.SCHEMA, db.schema_text("services.pledges")],
        title="twinaid pledges",
        description="Needs posted by recipients, pledges in kind and in money, what arrived.",
    )
