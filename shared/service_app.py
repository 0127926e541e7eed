"""The API of a service (services/<service>/app.py) as every service builds it: named after the
service, with the service's schema (shared/service_schema.py) and default settings."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from shared import service_schema, web
from shared.commands import Handlers
from shared.projections import Projection
from shared.settings import Settings


def create(
    service: str,
    settings: Settings | None,
    routers: Sequence[APIRouter],
    handlers: Handlers,
    projections: Sequence[Projection],
    *,
    description: str,
) -> FastAPI:
    """`service`'s app: its routes, the handlers of the commands they send, the projections in
    their unit of work; `settings` from the environment unless given (tests)."""
    return web.create_app(
        service=service,
        settings=settings or Settings(),
        routers=list(routers),
        handlers=handlers,
        projections=projections,
        schema=service_schema.scripts(service),
        title=f"twinaid {service}",
        description=description,
    )
