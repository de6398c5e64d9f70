"""What the API server (or the way to it) can answer instead of success, as types.

Callers say what they mean (``except Conflict``) instead of comparing status codes. Any
``ApiError(status, reason, message)`` is made as the subclass its status names, so an
answer from the wire and one raised by a test's fake server are the same type.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the API server refused, with its HTTP status and its own message."""

    status: int

    def __new__(cls, status: int, reason: str = "", message: str = "") -> Any:
        if cls is ApiError:
            cls = _class_of(status)
        return super().__new__(cls)

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (ApiError, (self.status, self.reason, self.message))


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class Conflict(ApiError):
    """409: it exists already, or changed since the version the write carried."""


class Unauthorized(ApiError):
    """401: the API server does not know this identity (an expired or revoked token)."""


class Forbidden(ApiError):
    """403: this identity may not do that (RBAC, or an admission policy)."""


class Invalid(ApiError):
    """400 or 422: the request itself is wrong; retrying it unchanged cannot help."""


class Outage(ApiError):
    """429 or 5xx: the API server cannot answer now; the same request may pass later."""


class NoCredentials(Exception):
    """Neither a pod's ServiceAccount nor a kubeconfig says how to reach a cluster."""


class NotLeading(Exception):
    """This replica does not hold the leader lease (any more): it must not write."""


def _class_of(status: int) -> type[ApiError]:
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 401:
        return Unauthorized
    if status == 403:
        return Forbidden
    if status in (400, 422):
        return Invalid
    if status == 429 or status >= 500:
        return Outage
    return ApiError
