"""Pledges routes, one module per resource: HTTP <-> commands (handlers.py), queries and
reports. No SQL, no rules; authorization through auth.py's dependencies."""

from __future__ import annotations

from services.pledges.api.exports import router as exports_router
from services.pledges.api.needs import router as needs_router
from services.pledges.api.pledges import router as pledges_router
from services.pledges.api.reference import router as reference_router
from services.pledges.api.reports import router as reports_router

# each with its full paths (prefix /v1): the app adds their routes as they are (shared/web.py)
routers = [needs_router, pledges_router, reports_router, exports_router, reference_router]
