"""Composition root of the pledges API: `uvicorn --factory services.pledges.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.pledges import api, handlers, projections
from shared import service_app
from shared.settings import Settings

SERVICE = "pledges"
DESCRIPTION = "Needs posted by recipients, pledges in kind and in money, what arrived."


def create_app(settings: Settings | None = None) -> FastAPI:
    return service_app.create(
        SERVICE, settings, api.routers, handlers.HANDLERS, projections.ALL, description=DESCRIPTION
    )
