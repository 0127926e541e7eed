"""The OpenAPI document of a service as partner software codes against it, and its docs pages.

FastAPI writes the document from the routes; this module finishes it once, at first request:
short camelCase operationIds, every error as `application/problem+json` with the one `Problem`
schema (FastAPI's own `HTTPValidationError` shape is never answered, so it is not documented),
the errors every keyed operation may meet (401, 429, 500, 503) and those the edge answers
before any route (413 for a body too large, 422 for a NUL in the path or query), `servers`,
global tags with descriptions, and integer formats. Swagger UI and ReDoc are served from the
files of the pinned `fastapi-offline` package: the pages name no outside URL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from shared import problems
from shared.settings import Settings

STATIC = Path(fastapi_offline.__file__).parent / "static"
STATIC_URL = "/docs/static"
CONTACT = {"name": "twinaid maintainers", "url": "https://twinaid.example/contact"}

# every tag an operation may carry, with what it groups (the document lists those it uses)
TAGS: dict[str, str] = {
    "organisations": "Municipalities, regions, hospitals, foundations and charities, with their"
    " aliases (Kharkiv/Charkiw), contacts and corrections",
    "partnerships": "Twinnings, sister cities and programme partnerships between two"
    " organisations, and their lifecycle (proposed to signed, suspended, ended)",
    "needs": "What a recipient needs: goods (quantity and unit) or money (amount and currency),"
    " with a priority, deadline and coverage",
    "pledges": "What donors pledge against needs: in-kind and money lines, commitment,"
    " amendments, money received and the donor's own figures",
    "reports": "Coverage, pledge lines and totals as JSON or HXL-tagged CSV, optionally"
    " converted with the caller's rates",
    "exports": "Sector formats: IATI 2.03 XML, EPCIS 2.0 JSON-LD",
    "reference": "The closed lists the API accepts (units, currencies, categories)",
    "convoys": "Convoys: plan, load pledge lines, field entries from the road, proof of"
    " delivery, close",
    "tracking": "Where convoys are, what they carry, deliveries and discrepancies, live updates",
    "pledge lines": "Committed in-kind pledge lines as shipments sees them: what may be loaded",
    "board": "The convoy board's configuration and its caller",
    "events": "The service's sealed event log as a feed with cursors",
    "audit": "A record's full history and the hash-chain verification",
    "health": "Liveness and readiness probes",
    "contract": "The published contract: the AsyncAPI document of the topics and the JSON"
    " Schema of every event type, served without a key",
    "webhooks": "Subscriptions of an organisation's URLs to event types (Standard Webhooks"
    " signatures), their delivery log and replay",
    "privacy": "Personal data held about a person: find, export (access request) and erase"
    " (crypto-shredding: the person's key is destroyed, the log still verifies)",
    "api-keys": "An organisation's own API keys: issue, list, rotate and revoke, with expiry,"
    " labels and last use",
}
_ENV_WORDS = "production, staging or local"


def operation_id(name: str) -> str:
    """`register_organisation` -> `registerOrganisation`."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def name_operations(routes: list[Any]) -> None:
    """Give each API route without an explicit operationId the camelCase of its function's
    name (stable as long as the function keeps its name; unique: checked by `document`)."""
    for route in routes:
        if isinstance(route, APIRoute) and not route.operation_id:
            route.operation_id = operation_id(route.name)


def install(app: FastAPI, *, service: str, settings: Settings) -> None:
    """The finished document at /openapi.json, Swagger UI at /docs and ReDoc at /redoc."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, service=service, settings=settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="docs-static")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)


def servers(service: str, settings: Settings) -> list[dict[str, Any]]:
    public = settings.public_urls.get(service)
    if public:
        return [
            {
                "url": public.rstrip("/"),
                "description": f"this deployment's {service} API ({_ENV_WORDS}, as configured"
                " in PUBLIC_URLS)",
                "x-internal": False,
            }
        ]
    return [
        {
            "url": "/",
            "description": f"the host serving this document ({_ENV_WORDS} alike)",
            "x-internal": False,
        }
    ]


def document(app: FastAPI, *, service: str, settings: Settings) -> dict[str, Any]:
    name_operations(app.routes)
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=servers(service, settings),
        contact=CONTACT,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" not in schemas:
        schemas["InvalidParam"] = problems.InvalidParam.model_json_schema()
        schema = problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        schemas["Problem"] = schema
    seen: set[str] = set()
    used_tags: list[str] = []
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            op_id = operation.get("operationId")
            if op_id in seen:
                raise ValueError(f"{where}: operationId {op_id} is used twice")
            seen.add(op_id)
            for tag in operation.get("tags", []):
                if tag not in used_tags:
                    used_tags.append(tag)
            _finish_operation(operation, keyed="security" in operation, method=method)
    # a tag missing from TAGS shows undescribed (tests/contract names it)
    doc["tags"] = [{"name": t, "description": TAGS.get(t, "")} for t in used_tags]
    for dropped in ("HTTPValidationError", "ValidationError"):
        schemas.pop(dropped, None)
    # a module's own problem model (named `<module>__Problem` beside ours): every error is
    # documented with the one Problem schema above, so such a copy is left unreferenced
    text = json.dumps(doc)
    for name in [n for n in schemas if n.endswith("__Problem") or n.endswith("__InvalidParam")]:
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name)
    _integer_formats(doc)
    return doc


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _edge_statuses(operation: dict[str, Any], *, method: str) -> list[int]:
    """What the edge (shared/web.py EdgeMiddleware) may answer before the route runs: 413 for
    a body over the limit on any POST, PUT or PATCH, 422 for a NUL in the path or query; and
    415 for a JSON body sent as another media type (shared/problems.py), on an operation whose
    body is JSON."""
    out = []
    if "requestBody" in operation or method in ("post", "put", "patch"):
        out.append(413)
    if problems.JSON_MEDIA_TYPE in operation.get("requestBody", {}).get("content", {}):
        out.append(415)
    if any(p.get("in") in ("path", "query") for p in operation.get("parameters", [])):
        out.append(422)
    return out


def _finish_operation(operation: dict[str, Any], *, keyed: bool, method: str) -> None:
    if not operation.get("description") and operation.get("summary"):
        # a route with a written summary and no docstring: the summary says what it does
        operation["description"] = operation["summary"]
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted = problems.problem_responses(*_edge_statuses(operation, method=method), public=not keyed)
    described = problems.problem_responses(401, 429, 503)
    for status, entry in wanted.items():
        if str(status) not in responses:
            responses[str(status)] = {
                "description": entry["description"],
                **({"headers": entry["headers"]} if "headers" in entry else {}),
                "content": {problems.PROBLEM: {"schema": dict(_PROBLEM_REF)}},
            }
    for status, response in responses.items():
        if status[0] in "45":
            # every error is problem+json, FastAPI's validation shape included
            response["content"] = {problems.PROBLEM: {"schema": dict(_PROBLEM_REF)}}
            for name, header in described.get(int(status), {}).get("headers", {}).items():
                response.setdefault("headers", {}).setdefault(name, header)
            continue
        content = response.get("content")
        if not content:
            continue
        for media in content.values():
            schema = media.get("schema")
            # a documented model (`responses={200: {"model": ...}}`) over the route's own
            # `dict[str, Any]` annotation: the model is what the answer is
            if isinstance(schema, dict) and "$ref" in schema and len(schema) > 1:
                media["schema"] = {"$ref": schema["$ref"]}
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        options = schema.get("anyOf")
        if options and len(options) == 2 and {"type": "null"} in options:
            # an optional query or header parameter is absent, never null
            (kept,) = [o for o in options if o != {"type": "null"}]
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            parameter["schema"] = {**kept, **rest}
        if "title" in parameter["schema"]:
            parameter["schema"].pop("title")


def _integer_formats(node: Any) -> None:
    """`format: int64` on every integer without one: JSON numbers the services write are
    PostgreSQL bigints at most."""
    if isinstance(node, dict):
        if node.get("type") == "integer" and "format" not in node:
            node["format"] = "int64"
        for value in node.values():
            _integer_formats(value)
    elif isinstance(node, list):
        for value in node:
            _integer_formats(value)


_CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")


def check_operation_ids(doc: dict[str, Any]) -> list[str]:
    """The operationIds that are not short camelCase (for tests)."""
    return [
        op["operationId"]
        for item in doc.get("paths", {}).values()
        for op in item.values()
        if not _CAMEL.match(op.get("operationId", "")) or len(op["operationId"]) > 40
    ]
