"""Pledges routes: HTTP <-> handlers, queries and reports. No SQL, no rules."""

from __future__ import annotations

from services.pledges.api.needs import router as needs_router
from services.pledges.api.pledges import router as pledges_router
from services.pledges.api.reports import router as reports_router

# each with its full paths (prefix /v1): the app adds their routes as they are (shared/web.py)
routers = [needs_router, pledges_router, reports_router]
