"""RFC 9457 problem+json: every anticipated error and every bug rendered one way."""

from __future__ import annotations

import logging
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from shared import logs
from shared.db import CONNECTION_LOST
from shared.errors import ServiceUnavailable, TwinaidError

log = logging.getLogger("twinaid.web")
PROBLEM = "application/problem+json"
# every 401 names the scheme to use (RFC 9110, 11.6.1): an API key as a bearer token
WWW_AUTHENTICATE = 'Bearer realm="twinaid"'


class InvalidParam(BaseModel):
    """One refused input: where it is (`lat`, `lines.0.quantity`, `query.limit`) and why."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=500, description="dotted path of the field or parameter")
    reason: str = Field(max_length=2000)


class Problem(BaseModel):
    """RFC 9457 problem details: every 4xx and 5xx of every service has this shape, as
    `application/problem+json`. `type` is a stable URI naming the kind of problem (e.g.
    `https://twinaid.example/problems/conflict`); other members (`current_version`,
    `retry_after`, `allowed`, ...) give details of that kind."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://twinaid.example/problems/validation-error",
                    "title": "The request is not valid",
                    "status": 422,
                    "detail": "lines.0.quantity: Input should be greater than 0",
                    "invalid_params": [
                        {"name": "lines.0.quantity", "reason": "Input should be greater than 0"}
                    ],
                    "correlation_id": "5b0e0c1e-8d0e-4a52-9a55-3f0c2d1f6a10",
                }
            ]
        },
    )

    type: str = Field(max_length=500, description="URI of the kind of problem")
    title: str = Field(max_length=500, description="short summary of the kind of problem")
    status: int = Field(ge=400, le=599, description="the HTTP status code")
    detail: str | None = Field(
        default=None, max_length=10_000, description="what went wrong in this request"
    )
    correlation_id: str | None = Field(
        default=None, max_length=128, description="quote it when reporting the problem"
    )
    invalid_params: list[InvalidParam] | None = Field(
        default=None, max_length=1000, description="422: each refused input"
    )
    current_version: int | None = Field(
        default=None, ge=0, description="412: the record's version now (its ETag unquoted)"
    )
    retry_after: int | None = Field(default=None, ge=0, description="429: seconds to wait")


_DESCRIPTIONS = {
    400: "The request is malformed",
    401: "No valid API key: send `Authorization: Bearer <API key>`",
    403: "The key may not do this (a role it lacks, or another organisation's record)",
    404: "No such record, or none the key may see",
    409: "Conflicts with the record's current state (the problem says which rule)",
    412: "If-Match names a version that is no longer the record's current one",
    413: "The body is larger than the limit (1,000,000 bytes)",
    415: "The body is JSON: send it with `Content-Type: application/json`",
    422: "An input is not valid (`invalid_params` names each one; `body` for a body that is"
    " not JSON) or an Idempotency-Key was used before with another request",
    429: "Too many requests for this key: wait `Retry-After` seconds",
    500: "A bug: quote the correlation id when reporting it",
    503: "A dependency (the database) is unavailable: retry after `Retry-After` seconds",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "the scheme to authenticate with",
            "schema": {"type": "string", "maxLength": 100, "pattern": "^Bearer"},
        }
    },
    429: {
        "Retry-After": {
            "description": "seconds to wait before the next request with this key",
            "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 86400},
        }
    },
    503: {
        "Retry-After": {
            "description": "seconds to wait before retrying",
            "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 86400},
        }
    },
}
# what every operation may answer: no or a bad key, over the rate limit, a bug, no database
ALWAYS = (401, 429, 500, 503)


def problem_responses(*statuses: int, public: bool = False) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of an operation's errors, each `application/problem+json` with
    the one `Problem` schema; 401, 429, 500 and 503 come with every operation that takes an API
    key (`public=True`: 500 and 503 only). Use as `responses={**problem_responses(404, 422)}`
    or merged with a success entry (`documented`)."""
    wanted = sorted({*statuses, *(ALWAYS if not public else (500, 503))})
    out: dict[int | str, dict[str, Any]] = {}
    for status in wanted:
        entry: dict[str, Any] = {"model": Problem, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def documented(
    model: Any,
    *errors: int,
    status: int = 200,
    description: str = "",
    headers: dict[str, Any] | None = None,
    public: bool = False,
    content: dict[str, Any] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """`responses` for a route that returns a Response itself (the write path answers with a
    JSONResponse, not re-validated through a response_model): its success `model` under
    `status`, and its errors as `problem_responses` does."""
    success: dict[str, Any] = {"model": model, "description": description or "Success"}
    if headers:
        success["headers"] = headers
    if content:
        success["content"] = content  # other media types beside the model's JSON (CSV)
    return {status: success, **problem_responses(*errors, public=public)}


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    cid = logs.correlation_id.get()
    if cid:
        body = {**body, "correlation_id": cid}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


VALIDATION_ERROR = "https://twinaid.example/problems/validation-error"


def invalid_params_problem(invalid: list[dict[str, str]]) -> JSONResponse:
    """The 422 validation problem naming each refused input (`name`, `reason`)."""
    return problem_response(
        422,
        {
            "type": VALIDATION_ERROR,
            "title": "The request is not valid",
            "status": 422,
            "detail": "; ".join(f"{i['name']}: {i['reason']}" for i in invalid),
            "invalid_params": invalid,
        },
    )


def _invalid_param(err: Any) -> dict[str, str]:
    """One of FastAPI's validation errors as an invalid parameter: its location dotted without
    the leading `body`; a JSON syntax error (located `("body", <position>)`) names the body
    and says where it broke, never the position as if it were a field."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid":
        why = (err.get("ctx") or {}).get("error") or err.get("msg", "invalid")
        at = f" at position {loc[-1]}" if len(loc) > 1 and isinstance(loc[-1], int) else ""
        return {"name": "body", "reason": f"the body is not valid JSON: {why}{at}"}
    return {
        "name": ".".join(str(p) for p in loc if p != "body") or "body",
        "reason": err.get("msg", "invalid"),
    }


# the JSON body of an operation sent without `Content-Type: application/json` (none, or
# text/plain): FastAPI does not parse it and validates the raw bytes against the model
JSON_MEDIA_TYPE = "application/json"


def _unsupported_media_type(exc: RequestValidationError) -> JSONResponse | None:
    """The 415 of a JSON body sent as another media type (FastAPI hands its model the raw
    bytes, never parsed), None for any other validation error. Only an operation whose body is
    a JSON model gets here: an upload of another type (CSV) reads its body itself."""
    raw = [e for e in exc.errors() if tuple(e.get("loc", ())) == ("body",)]
    if not raw or not all(isinstance(e.get("input"), bytes) for e in raw):
        return None
    return problem_response(
        415,
        {
            "type": "https://twinaid.example/problems/unsupported-media-type",
            "title": "Unsupported media type",
            "status": 415,
            "detail": f"the body is read as JSON: send it with Content-Type: {JSON_MEDIA_TYPE}",
            "accept": JSON_MEDIA_TYPE,
        },
    )


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    if (unsupported := _unsupported_media_type(exc)) is not None:
        return unsupported
    return invalid_params_problem([_invalid_param(err) for err in exc.errors()])


# what FastAPI answers (400, type about:blank) when the body cannot be decoded for a reason
# other than a JSON syntax error: answered as a syntax error is, the 422 validation problem
# naming the body and why (one answer for every body that is not JSON the service reads, the
# status every operation declares)
BODY_NOT_PARSED = "There was an error parsing the body"


def _unparsed_body(exc: StarletteHTTPException) -> JSONResponse | None:
    """The problem of a body FastAPI could not parse (invalid UTF-8, JSON nested too deeply, an
    integer with too many digits), None for any other HTTP error."""
    cause = exc.__cause__
    if exc.status_code != 400 or exc.detail != BODY_NOT_PARSED or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        reason = f"the body is not valid UTF-8 (byte {cause.start})"
    elif isinstance(cause, RecursionError):
        reason = "the JSON is nested too deeply"
    elif isinstance(cause, ValueError) and "digits" in str(cause):
        reason = f"a JSON number has more than {sys.get_int_max_str_digits()} digits"
    else:
        reason = "the body could not be read as JSON"
    return invalid_params_problem([{"name": "body", "reason": reason}])


def _with_challenge(status: int, headers: dict[str, str] | None) -> dict[str, str] | None:
    """A 401's headers with `WWW-Authenticate` (every 401 carries it); others' as they are."""
    if status != 401:
        return headers or None
    return {"WWW-Authenticate": WWW_AUTHENTICATE, **(headers or {})}


# the order methods are listed in an Allow header
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """The Allow header of a 405 (RFC 9110, 15.5.6): every method some route serves at the
    request's path, HEAD wherever GET (shared/web.py: HeadAsGet)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            if route.matches(request.scope)[0] is not Match.NONE:  # PARTIAL: another method
                methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods, key=_method_order))


def _method_order(method: str) -> tuple[int, str]:
    known = method in METHOD_ORDER
    return (METHOD_ORDER.index(method) if known else len(METHOD_ORDER), method)


def install_error_handlers(app: FastAPI) -> None:
    async def on_twinaid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, TwinaidError)
        return problem_response(
            exc.status, exc.problem(), headers=_with_challenge(exc.status, exc.headers)
        )

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if (unparsed := _unparsed_body(exc)) is not None:
            return unparsed
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return problem_response(
            exc.status_code,
            {
                "type": "about:blank",
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
            },
            headers=_with_challenge(exc.status_code, headers),
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


# the response header of a versioned record's read or write
ETAG = {
    "ETag": {
        "description": 'the record\'s version as a strong ETag (`"3"`): send it back in'
        " If-Match to update only that version",
        "schema": {"type": "string", "maxLength": 20, "pattern": '^"[0-9]+"$'},
    }
}
# `openapi_extra` of a write that honours Idempotency-Key (shared/web.py reads the header
# itself: declaring it as a parameter would cost the write path a resolution per request)
IDEMPOTENT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "any unique string (a UUID) per intended write: a retry with the same"
            " key and body gets the first answer again (`Idempotent-Replayed: true`) and stores"
            " nothing twice; the same key with another body is refused with 422",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "pattern": r"^[^\x00-\x1f\x7f]+$",
            },
        }
    ]
}
