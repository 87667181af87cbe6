"""Auth levels (docs/api.md): public, read, write, admin, from bearer tokens.

Who passes: with no token configured, read and write are open and admin is refused (403).
EXPORTER_API_TOKEN closes write to that token; EXPORTER_ADMIN_TOKEN opens admin to itself
and also passes write (alone, it leaves write open). Read stays open unless the web
configuration has basic-auth users, then it needs one of them or a valid bearer token.
Where a level is open, a bearer nobody configured is ignored. Tokens are compared in
constant time. A password check that would queue beyond the bcrypt queue's bounds is
answered 429 (counted as limit `auth`) without running bcrypt.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from ..security.basic_auth import AuthBusy
from ..security.server import client_key
from .errors import ApiError, error_response
from .keys import ROUTE_INDEX, SETTINGS

BASIC_AUTH: web.AppKey[object] = web.AppKey("basic_auth", object)  # set by the web-config feature


def _equal(given: str, expected: str | None) -> bool:
    # Header bytes that are not UTF-8 reach us as surrogate escapes: compare the bytes sent.
    return expected is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                        expected.encode())


def route_level(request: web.Request) -> str | None:
    """The level of the matched route, or None when nothing matched (404/405 follow)."""
    info = request.match_info
    if info.http_exception is not None:
        return None
    resource = info.route.resource
    if resource is None:
        return None
    route = request.app[ROUTE_INDEX].get((request.method, resource.canonical))
    if route is None and request.method == "HEAD":
        route = request.app[ROUTE_INDEX].get(("GET", resource.canonical))
    return route.level if route is not None else None


async def _basic_ok(basic, request: web.Request, header: str) -> bool:
    """The basic-auth check, for this request's client address; AuthBusy becomes a 429."""
    try:
        return await basic.check(header, client_key(request.remote))
    except AuthBusy as exc:
        raise ApiError(429, "too_many_requests", str(exc), None, {"Retry-After": "1"},
                       limit="auth") from None


def _challenge(detail: str, basic: bool) -> web.Response:
    scheme = 'Basic realm="usdcop-exporter"' if basic else 'Bearer realm="usdcop-exporter"'
    return error_response(401, "unauthorized", detail, None, {"WWW-Authenticate": scheme})


async def check_access(request: web.Request, level: str) -> web.Response | None:
    """None when the request may proceed, else the 401/403 answer."""
    if level == "public":
        return None
    settings = request.app[SETTINGS]
    api_token, admin_token = settings.api_token, settings.admin_token
    basic = request.app.get(BASIC_AUTH)
    if basic is not None and not getattr(basic, "active", True):
        basic = None  # a web configuration without users (they may come and go while running)
    header = request.headers.get("Authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
    is_admin = bearer is not None and _equal(bearer, admin_token)
    is_writer = is_admin or (bearer is not None and _equal(bearer, api_token))
    if level == "admin":
        if admin_token is None:
            return error_response(403, "forbidden", "no admin token configured", None)
        if is_admin:
            return None
        if bearer is None:
            return _challenge("the admin bearer token is required for this route", False)
        if is_writer:
            return error_response(403, "forbidden", "this route needs the admin token", None)
        return _challenge("invalid bearer token", False)
    if level == "read":
        if basic is None or is_writer:
            return None  # open to anyone: a bearer nobody configured is simply ignored
        if await _basic_ok(basic, request, header):
            return None
        detail = "invalid bearer token" if bearer is not None else "authentication required"
        return _challenge(detail, True)
    # write: open unless an API token or basic-auth users are configured (an admin token
    # alone protects only the admin routes, as the auth table of docs/api.md says)
    if api_token is None and basic is None:
        return None
    if is_writer:
        return None
    if api_token is None and await _basic_ok(basic, request, header):
        return None  # basic-auth users and no API token: the users are the credential
    if bearer is None:
        return _challenge("a bearer token is required for this route", False)
    return _challenge("invalid bearer token", False)


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Refuse requests whose credentials do not reach the route's level."""
    level = route_level(request)
    if level is not None:
        refusal = await check_access(request, level)
        if refusal is not None:
            return refusal
    return await handler(request)
