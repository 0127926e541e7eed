"""The query parameters every list route takes alike: the page it asks for (`cursor`, `limit`),
read by one dependency instead of each route declaring and passing the two."""

# no `from __future__ import annotations`: the page's limit is annotated with its bounds, which
# FastAPI must read from the annotation object itself (a string naming a closure's variable
# does not resolve)
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query

from shared import pagination

Cursor = Annotated[str | None, Query(max_length=500)]


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

    def page(cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=most)] = default) -> Page:
        return Page(cursor, limit)

    return Depends(page)
