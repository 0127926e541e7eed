"""Composition root of the shipments API: `uvicorn --factory services.shipments.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.shipments import api, handlers, projections
from shared import service_app
from shared.settings import Settings

SERVICE = "shipments"
DESCRIPTION = "Convoys from committed pledges to proof of delivery, tracked live."


def create_app(settings: Settings | None = None) -> FastAPI:
    return service_app.create(
        SERVICE, settings, api.ROUTERS, handlers.HANDLERS, projections.ALL, description=DESCRIPTION
    )
