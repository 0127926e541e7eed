"""What every service's routes take alike: the page a list asks for (`cursor`, `limit`), read by
one dependency instead of each route declaring and passing the two; the instant a read is
`as_of`; and the request bodies' common ground (Body, example), declared once for the three
services."""

# no `from __future__ import annotations`: the page's limit is annotated with its bounds, which
# FastAPI must read from the annotation object itself (a string naming a closure's variable
# does not resolve)
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from shared import instants, pagination

Cursor = Annotated[str | None, Query(max_length=500)]
Limit = Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT)]
AsOf = Annotated[instants.QueryInstant | None, Query(description="state as of this instant")]


class Body(BaseModel):
    """A request body: strict (an unknown field is refused, not silently dropped, so a misspelt
    one is noticed), its strings stripped of surrounding whitespace."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def example(body: dict[str, Any]) -> ConfigDict:
    """A body's configuration with its example for the OpenAPI document."""
    return ConfigDict(json_schema_extra={"examples": [body]})


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a list: after `cursor` (None: the first page), `limit` items at most."""

    cursor: str | None
    limit: int

    def args(self) -> dict[str, Any]:
        """The page as the queries take it (keyword arguments `cursor` and `limit`)."""
        return {"cursor": self.cursor, "limit": self.limit}


def paged(default: int, most: int = pagination.MAX_LIMIT) -> Any:
    """The dependency reading a list's page: `default` items unless asked, at most `most`.
    Use as `Annotated[Page, paged(50)]`: its two parameters come after the route's own in the
    OpenAPI document (as a dependency's do), where list routes declare them."""

    async def page(
        cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=most)] = default
    ) -> Page:
        """async: it blocks on nothing, so FastAPI runs it without a worker thread."""
        return Page(cursor, limit)

    return Depends(page)


class CoordinatesIn(Body):
    """Where a place is (an organisation's town or premises, a checkpoint on the road): WGS 84
    degrees, JSON numbers only (no strings, booleans, NaN or infinities)."""

    lat: Annotated[
        float, Field(ge=-90, le=90, strict=True, allow_inf_nan=False, description="latitude")
    ]
    lon: Annotated[
        float, Field(ge=-180, le=180, strict=True, allow_inf_nan=False, description="longitude")
    ]
