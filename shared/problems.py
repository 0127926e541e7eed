"""RFC 9457 problem+json: every anticipated error and every bug rendered one way."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import logs
from shared.db import CONNECTION_LOST
from shared.errors import ServiceUnavailable, TwinaidError

log = logging.getLogger("twinaid.web")
PROBLEM = "application/problem+json"


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    cid = logs.correlation_id.get()
    if cid:
        body = {**body, "correlation_id": cid}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    invalid = [
        {
            "name": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
            "reason": err.get("msg", "invalid"),
        }
        for err in exc.errors()
    ]
    return problem_response(
        422,
        {
            "type": "https://twinaid.example/problems/validation-error",
            "title": "The request is not valid",
            "status": 422,
            "detail": "; ".join(f"{i['name']}: {i['reason']}" for i in invalid),
            "invalid_params": invalid,
        },
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_twinaid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, TwinaidError)
        return problem_response(exc.status, exc.problem(), headers=exc.headers or None)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(exc)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code,
            {
                "type": "about:blank",
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
            },
            headers=getattr(exc, "headers", None),
        )

    async def on_db_down(_: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        return problem_response(
            503,
            ServiceUnavailable("the database is not reachable").problem(),
            headers={"Retry-After": "2"},
        )

    app.add_exception_handler(TwinaidError, on_twinaid)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for exc_type in CONNECTION_LOST:
        app.add_exception_handler(exc_type, on_db_down)


def internal_error() -> JSONResponse:
    return problem_response(
        500,
        {
            "type": "https://twinaid.example/problems/internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "an unexpected error occurred; quote the correlation id when reporting it",
        },
    )
