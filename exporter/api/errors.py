"""API errors as JSON `{error, detail, field}`, from one middleware."""

from __future__ import annotations

from aiohttp import web
from loguru import logger


class ApiError(Exception):
    """An error answer: HTTP status, a short code, a message and the offending field."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.limit = limit  # the usdcop_limit_rejections_total label, when a limit refused it


def bad_request(detail: str, field: str | None = None) -> ApiError:
    """400: malformed request (bad JSON, bad query parameter)."""
    return ApiError(400, "bad_request", detail, field)


def invalid(detail: str, field: str | None = None) -> ApiError:
    """422: well-formed but invalid."""
    return ApiError(422, "invalid", detail, field)


def not_found(detail: str, field: str | None = None, code: str = "not_found") -> ApiError:
    """404."""
    return ApiError(404, code, detail, field)


def unavailable(detail: str, retry_after: int = 5, code: str = "unavailable") -> ApiError:
    """503 with Retry-After: a dependency is away or the spool is full."""
    return ApiError(503, code, detail, None, {"Retry-After": str(retry_after)})


def error_response(
    status: int, code: str, detail: str, field: str | None = None, headers: dict | None = None
) -> web.Response:
    """The one JSON shape every error answer has."""
    return web.json_response(
        {"error": code, "detail": detail, "field": field}, status=status, headers=headers
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Turn ApiError, aiohttp's HTTP errors and unexpected faults into JSON errors."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.detail, exc.field, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        detail = exc.reason
        if exc.status == 413:
            detail = "request body too large"
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        return error_response(exc.status, code, detail, None, headers)
    except Exception:
        logger.exception("unhandled error in {} {}", request.method, request.path)
        return error_response(500, "internal", "internal error of the sidecar", None)
