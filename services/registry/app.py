"""Composition root of the registry API: `uvicorn --factory services.registry.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry import api, handlers, projections
from shared import service_app
from shared.settings import Settings

SERVICE = "registry"
DESCRIPTION = "Organisations and the lifecycle of their partnerships."


def create_app(settings: Settings | None = None) -> FastAPI:
    return service_app.create(
        SERVICE, settings, api.ROUTERS, handlers.HANDLERS, projections.ALL, description=DESCRIPTION
    )
