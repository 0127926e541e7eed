"""What the services' routes document about their answers, in one place: a read's answer
model (with the record's ETag where it has one) and its problems; a write's answer under its
status with the record's ETag, its problems and Idempotency-Key. Each route then says only what
is its own (its path, model, errors, operation id), and every route of a kind documents the
same way (the partner's generated client relies on it: tests/contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from fastapi import APIRouter
from fastapi.types import DecoratedCallable

from shared import problems

# the errors of a change to an existing record (412: If-Match is stale), and of a creation
CHANGE_ERRORS = (403, 404, 409, 412, 413, 422)
CREATE_ERRORS = (403, 404, 409, 413, 422)
# a read that also answers CSV (`format=csv`)
CSV = {"text/csv": {"schema": {"type": "string", "maxLength": 100_000_000}}}


class Route(Protocol):
    """A route decorator, as `router.get(...)` answers it."""

    def __call__(self, endpoint: DecoratedCallable, /) -> DecoratedCallable: ...


def read(
    model: Any, *errors: int, etag: bool = False, content: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A read route's arguments: its answer `model` (with the record's version as its ETag
    when `etag`; other media types in `content`) and its problems."""
    headers = problems.ETAG if etag else None
    return {"responses": problems.documented(model, *errors, headers=headers, content=content)}


def changed(
    model: Any,
    status: int = 200,
    description: str = "",
    *,
    errors: Sequence[int] = CHANGE_ERRORS,
    more: dict[int | str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A write route's arguments: `model` with the record's ETag under `status`, its
    problems (`more`: other answers, e.g. a 202), and Idempotency-Key (shared/web.py `write`
    reads it)."""
    responses = problems.documented(
        model, *errors, status=status, headers=problems.ETAG, description=description
    )
    return {"responses": {**responses, **(more or {})}, "openapi_extra": problems.IDEMPOTENT}


def created(
    model: Any, description: str, *, errors: Sequence[int] = CREATE_ERRORS
) -> dict[str, Any]:
    """A route creating a record: as changed(), answered 201."""
    return {"status_code": 201, **changed(model, 201, description, errors=errors)}


class Router(APIRouter):
    """An APIRouter whose read and write routes document their answers as above: each route
    gives its path, answer model, errors and own arguments (tags, operation id...)."""

    def read(
        self,
        path: str,
        model: Any,
        *errors: int,
        etag: bool = False,
        content: dict[str, Any] | None = None,
        **own: Any,
    ) -> Route:
        return self.get(path, **own, **read(model, *errors, etag=etag, content=content))

    def change(
        self,
        path: str,
        model: Any,
        *,
        errors: Sequence[int] = CHANGE_ERRORS,
        more: dict[int | str, dict[str, Any]] | None = None,
        method: Literal["post", "put"] = "post",
        **own: Any,
    ) -> Route:
        """A change to an existing record (changed())."""
        route = self.put if method == "put" else self.post
        return route(path, **own, **changed(model, errors=errors, more=more))

    def create(
        self,
        path: str,
        model: Any,
        description: str,
        *,
        errors: Sequence[int] = CREATE_ERRORS,
        **own: Any,
    ) -> Route:
        """A new record, answered 201 (created())."""
        return self.post(path, **own, **created(model, description, errors=errors))
