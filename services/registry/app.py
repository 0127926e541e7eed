"""Composition root of the registry API: `uvicorn --factory services.registry.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry import api, handlers, projections
from shared import db, web
from shared.settings import Settings

SERVICE = "registry"


def create_app(settings: Settings | None = None) -> FastAPI:
    return web.create_app(
        service=SERVICE,
        settings=settings or Settings(),
        routers=list(api.ROUTERS),
        handlers=handlers.HANDLERS,
        projections=projections.ALL,
        schema=[db.schema_text("services.registry")],
        title="twinaid registry",
        description="Organisations and the lifecycle of their partnerships.",
    )
