"""Request limits and the web configuration, applied to every request.

One middleware, placed after the error middleware and before auth, answers in this order:
a connection over a connection cap (429, unless the route is /healthz, /readyz or /metrics
and the reserve has room: then it is answered, and the connection closed), a web
configuration that cannot be used (503, failing closed), a client certificate outside
`client_allowed_sans` (403), headers over their total size (431), a query parameter the
route table does not declare for the route (400 naming it). It also counts the limits
handlers enforce themselves (body, depth, string, batch, signal_size, symbols) as they
pass by. A second middleware, placed after auth, applies the rate limit (429; public
routes exempt so liveness checks never fail because someone floods /metrics) to requests
that passed authentication, so that failed attempts never drain the bucket of the clients
that authenticate. Each hit increments `usdcop_limit_rejections_total{limit}`.

`make_site()` gives the listener: a GuardedSite (header-read deadline, connection caps from
the settings, parser refusals as JSON) with the web configuration's TLS context.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..security.server import ConnectionGuard, GuardedSite
from ..security.tls import peer_sans
from ..security.web import WebSecurity
from .auth import BASIC_AUTH, route_level
from .errors import ApiError, error_response
from .keys import CORE_METRICS, ROUTE_INDEX, SETTINGS

WEB_SECURITY: web.AppKey[WebSecurity] = web.AppKey("web_security", WebSecurity)

MAX_HEADERS = 100  # header lines per request
MAX_FIELD_SIZE = 8190  # bytes per header line, and for the request line
MAX_HEADER_BYTES = 32 * 1024  # all header names and values together
KEEPALIVE_TIMEOUT = 5.0  # idle keep-alive connections are closed after this
# Served on connections over a cap while the guard's reserve has room: liveness, readiness
# and scrapes must not fail because someone holds every connection.
RESERVED_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def handler_args() -> dict:
    """aiohttp handler arguments: parser limits and the keep-alive idle timeout.

    Request bodies reach the handlers as sent: read_json decodes gzip itself, within the
    route's body limit (aiohttp's automatic decompression is off)."""
    return {"max_headers": MAX_HEADERS, "max_field_size": MAX_FIELD_SIZE,
            "max_line_size": MAX_FIELD_SIZE, "keepalive_timeout": KEEPALIVE_TIMEOUT,
            "auto_decompress": False}


def count_limit(app: web.Application, limit: str) -> None:
    """Add one to usdcop_limit_rejections_total{limit}."""
    metrics = app.get(CORE_METRICS)
    if metrics is not None:
        metrics.limit_rejections.labels(limit).inc()


def limit_of(exc: ApiError) -> str | None:
    """Which limit a handler's error stands for (None: not a limit)."""
    if exc.limit is not None:
        return exc.limit
    detail = exc.detail
    if exc.status == 408:
        return "body"  # the body-read deadline against dripping clients
    if exc.status == 413:
        if exc.field in ("events", "records") or "per batch" in detail or "per request" in detail:
            return "batch"
        return "body"
    if "nested deeper" in detail:
        return "depth"
    if "longer than" in detail:
        return "string"
    return None


def _refuse(status: int, code: str, detail: str, field: str | None = None,
            headers: dict | None = None) -> web.Response:
    return error_response(status, code, detail, field, headers)


def _route(request: web.Request):
    """The route-table entry of the matched route (GET's for HEAD), or None."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return None
    index = request.app.get(ROUTE_INDEX) or {}
    path = info.route.resource.canonical
    return index.get((request.method, path)) or (index.get(("GET", path)) if request.method == "HEAD" else None)


def query_names(spec: dict | None) -> set[str]:
    """The query parameters a route declares; an exploded form object declares its properties."""
    names: set[str] = set()
    for param in (spec or {}).get("parameters", ()):
        if param.get("in") != "query":
            continue
        schema = param.get("schema") or {}
        if param.get("explode") and param.get("style", "form") == "form":
            for branch in schema.get("oneOf", [schema]):
                names.update(branch.get("properties", ()))
        else:
            names.add(param.get("name"))
    return names


def _reserved(request: web.Request) -> bool:
    info = request.match_info
    return (request.method in ("GET", "HEAD") and info.http_exception is None
            and info.route.resource is not None and info.route.resource.canonical in RESERVED_ROUTES)


@web.middleware
async def limits_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Apply the connection, web-config and header limits; count handlers' limits."""
    app = request.app
    protocol = request.protocol
    if getattr(protocol, "over_capacity", False):
        guard = protocol.guard
        if _reserved(request) and guard.take_reserve():
            try:
                resp = await _limited(request, handler)
            except ApiError as exc:  # answered here, so that the answer can say "close"
                resp = _refuse(exc.status, exc.code, exc.detail, exc.field, exc.headers)
            finally:
                guard.give_back_reserve()
                protocol.close()  # answered from the reserve, error or not: the place is not kept
            resp.force_close()
            return resp
        limit = protocol.over_limit or "connections"
        count_limit(app, limit)
        detail = ("too many open connections from this address; retry shortly"
                  if limit == "connections_per_client" else "too many open connections; retry shortly")
        resp = _refuse(429, "too_many_connections", detail, headers={"Retry-After": "1"})
        resp.force_close()
        return resp
    return await _limited(request, handler)


async def _limited(request: web.Request, handler) -> web.StreamResponse:
    app = request.app
    security = app.get(WEB_SECURITY)
    if security is not None:
        if security.failure is not None:
            return _refuse(503, "web_config_unavailable",
                           "the web configuration cannot be used; the sidecar's log says why",
                           headers={"Retry-After": "5"})
        tls = security.config.tls
        if tls is not None and tls.client_allowed_sans:
            ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
            if not peer_sans(ssl_object) & set(tls.client_allowed_sans):
                return _refuse(403, "forbidden", "client certificate not allowed")
    size = sum(len(name) + len(value) for name, value in request.raw_headers)
    if size > MAX_HEADER_BYTES:
        count_limit(app, "header")
        return _refuse(431, "header_too_large", f"headers total {size} bytes; at most {MAX_HEADER_BYTES}")
    route = _route(request) if request.query_string else None  # no query: nothing to check
    if route is not None:
        declared = query_names(route.spec)
        for key in request.query:
            if key not in declared:  # the route table says what each route takes; nothing else
                return _refuse(400, "bad_request", f"unknown query parameter {key[:64]!r}", key[:64])
    try:
        return await handler(request)
    except ApiError as exc:
        limit = limit_of(exc)
        if limit is not None:
            count_limit(app, limit)
        raise
    except web.HTTPRequestEntityTooLarge:
        count_limit(app, "body")
        raise


@web.middleware
async def rate_middleware(request: web.Request, handler) -> web.StreamResponse:
    """The web configuration's rate limit, for requests that passed authentication."""
    security = request.app.get(WEB_SECURITY)
    rate = security.rate if security is not None else None
    if rate is not None and route_level(request) not in ("public", None) and not rate.allow():
        count_limit(request.app, "rate")
        return _refuse(429, "too_many_requests", "rate limit exceeded",
                       headers={"Retry-After": str(rate.retry_after())})
    return await handler(request)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    security = request.app.get(WEB_SECURITY)
    if security is not None:
        for name, value in security.headers:
            response.headers[name] = value


async def _watch_ctx(app: web.Application):
    task = asyncio.create_task(app[WEB_SECURITY].watch())
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise


def setup(app: web.Application) -> None:
    """Load the web configuration named by the settings (ConfigError propagates) and wire it."""
    path = app[SETTINGS].web_config
    if not path:
        return
    security = WebSecurity(path)
    app[WEB_SECURITY] = security
    app[BASIC_AUTH] = security
    app.on_response_prepare.append(_add_headers)
    app.cleanup_ctx.append(_watch_ctx)


def make_site(runner: web.AppRunner, app: web.Application, host: str, port: int,
              guard: ConnectionGuard | None = None) -> GuardedSite:
    """The listener for `app`: guarded connections, TLS when the web configuration has it.

    Without a `guard`, the caps come from the settings (EXPORTER_MAX_CONNECTIONS and
    EXPORTER_MAX_CONNECTIONS_PER_CLIENT).
    """
    if guard is None:
        settings = app[SETTINGS]
        guard = ConnectionGuard(max_connections=settings.max_connections,
                                max_per_client=settings.max_connections_per_client,
                                on_limit=lambda limit: count_limit(app, limit))
    security = app.get(WEB_SECURITY)
    ssl_context = security.ssl_context if security is not None else None
    return GuardedSite(runner, host, port, guard=guard, ssl_context=ssl_context, reuse_address=True)
