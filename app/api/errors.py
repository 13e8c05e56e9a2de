"""One error envelope for every failure: ``{"error": str, "code": str | null, "details": any | null}``.

``error`` is the human message (the reference's clients read only that key); ``code`` is a stable
machine-readable string. Unexpected exceptions become a 500 whose body never carries internal text; the
details go to the log with the request id.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger(__name__)

_CODES = {
    400: "VALIDATION_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "AUTHORIZATION_ERROR",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    423: "LOCKED",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """Raise from a handler to answer with the error envelope."""

    def __init__(
        self,
        status: int,
        error: str,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.code, self.details = status, error, code or _CODES.get(status), details
        self.headers, self.extra = headers or {}, extra


def error_response(
    status: int,
    error: str,
    code: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"error": error, "code": code or _CODES.get(status), "details": details, **extra}
    return Response(body, status_code=status, headers=headers or {})


def _api_error(_: Request, exc: ApiError) -> Response[dict[str, Any]]:
    return error_response(exc.status, exc.error, exc.code, exc.details, exc.headers, **exc.extra)


def _validation_error(_: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, list) else ([exc.extra] if exc.extra else [])
    errors = []
    for item in extra:
        if isinstance(item, dict):
            field = str(item.get("key") or item.get("source") or "body")
            errors.append({"field": field, "message": str(item.get("message", ""))})
    message = exc.detail if exc.detail and not exc.detail.startswith("Validation failed for") else "Validation failed"
    return error_response(400, message, "VALIDATION_ERROR", {"errors": errors}, success=False)


def _http_exception(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, NotFoundException) and exc.detail in ("Not Found", ""):
        return error_response(404, f"Route not found: {request.method} {request.url.path}", "NOT_FOUND")
    if isinstance(exc, MethodNotAllowedException):
        return error_response(405, f"Method {request.method} not allowed on {request.url.path}", "METHOD_NOT_ALLOWED")
    if status >= 500:
        log.error("http exception", extra={"fields": {"status": status, "detail": exc.detail}})
        return error_response(status, "Internal Server Error", "INTERNAL_ERROR")
    detail = exc.detail or "Request failed"
    if status == 400 and ("JSON" in detail or "decode" in detail.lower() or "malformed" in detail.lower()):
        detail = "Malformed JSON body"
    return error_response(status, detail, None, headers=dict(exc.headers or {}))


# The database being briefly away (restart, failover, pool exhausted) is not a bug: tell the caller to retry.
DATABASE_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def _database_unavailable(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.warning("database unavailable", extra={"fields": {"path": request.url.path, "error": type(exc).__name__}})
    return error_response(
        503, "Database temporarily unavailable, retry shortly", "SERVICE_UNAVAILABLE", headers={"Retry-After": "1"}
    )


def _unhandled(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", extra={"fields": {"method": request.method, "path": request.url.path}})
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error", "INTERNAL_ERROR")


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    ValidationException: _validation_error,
    HTTPException: _http_exception,
    **dict.fromkeys(DATABASE_UNAVAILABLE, _database_unavailable),
    Exception: _unhandled,
}
