"""Pledges routes: HTTP <-> handlers, queries and reports. No SQL, no rules."""

from __future__ import annotations

from fastapi import APIRouter

from services.pledges.api.needs import router as needs_router
from services.pledges.api.pledges import router as pledges_router
from services.pledges.api.reports import router as reports_router

router = APIRouter(prefix="/v1")
router.include_router(needs_router)
router.include_router(pledges_router)
router.include_router(reports_router)
