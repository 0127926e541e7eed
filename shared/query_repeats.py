"""A query parameter a route takes once, sent more than once, is refused (422 naming it), not
silently read as its last value: `?donor=lille&donor=leeds` would otherwise list Leeds alone,
and `?status=in_transit&status=delivered` nothing. A parameter a route declares as a list
(pledges' report `rate`) may repeat; one the route does not know is ignored, as before."""

from __future__ import annotations

import typing
from collections import Counter
from collections.abc import Iterable, Sequence
from types import UnionType
from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

_SEQUENCES = (list, tuple, set, frozenset, Sequence)


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_sequence(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is UnionType:
        return any(_is_sequence(a) for a in typing.get_args(annotation))
    return origin in _SEQUENCES or annotation in _SEQUENCES


def _query_fields(dependant: Any) -> Iterable[Any]:
    yield from getattr(dependant, "query_params", ())
    for sub in getattr(dependant, "dependencies", ()):
        yield from _query_fields(sub)


_ONCE: dict[int, frozenset[str]] = {}


def taken_once(route: APIRoute) -> frozenset[str]:
    """The query parameters `route` takes as one value (by their names in the query)."""
    found = _ONCE.get(id(route))
    if found is None:
        found = _ONCE[id(route)] = frozenset(
            field.alias
            for field in _query_fields(route.dependant)
            if not _is_sequence(field.field_info.annotation)
        )
    return found


def repeated(scope: Scope) -> list[str]:
    """`query.<name>` of each parameter sent more than once that the route it reaches takes
    once (empty when none is, or no route matches)."""
    query = scope.get("query_string", b"")
    if b"&" not in query:
        return []
    counts = Counter(k for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    twice = {k for k, n in counts.items() if n > 1}
    if not twice:
        return []
    app = scope.get("app")
    if scope.get("method") == "HEAD":  # answered as GET (shared/web.py HeadAsGet)
        scope = {**scope, "method": "GET"}
    reached: APIRoute | None = None  # the route of this path and method; else of this path
    for route in getattr(getattr(app, "router", None), "routes", ()):
        if isinstance(route, APIRoute):
            match = route.matches(scope)[0]
            if match is Match.FULL:
                reached = route
                break
            if match is Match.PARTIAL and reached is None:
                reached = route
    if reached is None:
        return []
    return sorted(f"query.{k}" for k in twice & taken_once(reached))
