"""The published contract, served by every service without a key (like its health): the
AsyncAPI document of the topics and every event type's JSON Schema at the path its `$id` maps
to (shared/published.py)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from shared import asyncapi, published
from shared.deps import Ctx
from shared.errors import NotFound

SCHEMA_MEDIA_TYPE = "application/schema+json"
SchemaFile = Annotated[
    str,
    Path(
        description="`<event type>.v<N>.json`, or the schema's `$id` itself"
        " (`urn:twinaid:schema:<event type>.v<N>`)",
        max_length=160,
        pattern=r"^(urn:twinaid:schema:)?[a-z0-9][a-z0-9.-]*\.v[0-9]+(\.json)?$",
        examples=["registry.organisation-registered.v1.json"],
    ),
]


class PublishedSchema(BaseModel):
    id: str = Field(description="the schema's `$id`, and its events' `ce_dataschema`")
    path: str = Field(description="where every service serves it, relative to its base URL")
    event_type: str
    version: int = Field(ge=1)
    owner: str = Field(description="the service that publishes it, or `shared` (every one)")


class PublishedSchemas(BaseModel):
    schemas: list[PublishedSchema]


def _json(body: Any, media_type: str) -> Response:
    text = json.dumps(body, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return Response(
        text.encode(),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300"},
    )


def router() -> APIRouter:
    router = APIRouter()
    built: dict[str, bytes] = {}

    @router.get(
        "/asyncapi.json",
        tags=["contract"],
        operation_id="getAsyncApi",
        summary="The AsyncAPI 3.0 document of the topics",
        description="Every service's events topic and dead-letter topic, their messages (the"
        " JSON Schemas of every event type) and headers. Public: no key needed.",
        response_class=Response,
        responses={200: {"content": {"application/json": {}}}},
    )
    async def asyncapi_document(ctx: Ctx) -> Response:
        if "document" not in built:  # the files and settings do not change while serving
            text = json.dumps(asyncapi.for_settings(ctx.settings), indent=2) + "\n"
            built["document"] = text.encode()
        return Response(
            built["document"],
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @router.get(
        "/schemas",
        tags=["contract"],
        operation_id="listEventSchemas",
        summary="Every published event schema: its `$id` and where it is served",
    )
    async def list_schemas() -> PublishedSchemas:
        found = asyncapi.schemas()
        return PublishedSchemas(
            schemas=[
                PublishedSchema(
                    id=(identifier := published.schema_id(name.rsplit(".v", 1)[0], version)),
                    path=published.schema_path(identifier),
                    event_type=name.rsplit(".v", 1)[0],
                    version=version,
                    owner=owner,
                )
                for name, (owner, version, _) in found.items()
            ]
        )

    @router.get(
        "/schemas/{name}",
        tags=["contract"],
        operation_id="getEventSchema",
        summary="One event type's JSON Schema (draft 2020-12), at the path its `$id` maps to",
        response_class=Response,
        responses={
            200: {"content": {SCHEMA_MEDIA_TYPE: {}}},
            404: {"description": "no such schema"},
        },
    )
    async def event_schema(name: SchemaFile) -> Response:
        # the `$id` resolves here too: /schemas/urn:twinaid:schema:<type>.v<N>
        if name.startswith(published.SCHEMA_URN) or not name.endswith(".json"):
            name = published.schema_path(name).removeprefix(published.SCHEMA_ROUTE)
        path = published.schema_files().get(name)
        if path is None:
            raise NotFound(f"no published schema {name}: GET /schemas lists them")
        return _json(json.loads(path.read_text()), SCHEMA_MEDIA_TYPE)

    return router
