"""Anticipated failures, each with its HTTP status, rendered once as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any, ClassVar


class TwinaidError(Exception):
    """Base of every anticipated failure. Anything else reaching the edge is a bug (500)."""

    status: ClassVar[int] = 400
    type_slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}

    def problem(self) -> dict[str, Any]:
        return {
            "type": f"https://twinaid.example/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


class ValidationFailed(TwinaidError):
    status = 422
    type_slug = "validation-error"
    title = "The request is not valid"


class Unauthenticated(TwinaidError):
    status = 401
    type_slug = "unauthenticated"
    title = "A valid API key is required"


class Forbidden(TwinaidError):
    status = 403
    type_slug = "forbidden"
    title = "This key may not do that"


class NotFound(TwinaidError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(TwinaidError):
    status = 409
    type_slug = "conflict"
    title = "Conflict with the current state"


class PreconditionFailed(TwinaidError):
    status = 412
    type_slug = "precondition-failed"
    title = "If-Match does not match the current version"


class IdempotencyKeyReused(TwinaidError):
    status = 422
    type_slug = "idempotency-key-reused"
    title = "Idempotency-Key already used with a different request"


class TooManyRequests(TwinaidError):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests for this key"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(
            detail, extra={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)}
        )


class ServiceUnavailable(TwinaidError):
    status = 503
    type_slug = "unavailable"
    title = "A dependency is unavailable; retry later"


# what If-Match carries for a weak ETag (W/"3"): it matches no version, If-Match compares strongly
WEAK_TAG = -1


def check_if_match(version: int, if_match: int | None) -> None:
    """`If-Match: <version>` on an update: refuse it when the record moved on."""
    if if_match is not None and if_match != version:
        moved = "a weak ETag never matches" if if_match == WEAK_TAG else f"not {if_match}"
        raise PreconditionFailed(
            f"the record is at version {version}, {moved}: reload it and retry",
            extra={"current_version": version},
        )
