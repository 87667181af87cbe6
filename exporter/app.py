"""The composition root: create_app(settings, registry) builds the whole sidecar.

Each feature module under exporter/api/ has `setup(app) -> list[Route]`: it creates its
components (appending one-`yield` contexts to `app.cleanup_ctx` for anything with I/O),
stores them under its own typed AppKey, and returns its routes. Features are set up in
FEATURES order, so later ones may use earlier ones' components (audit hooks into the
health checker, for instance). Cleanup runs in reverse order.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from .api import audit, cache, desk, health, latency, limits, ops
from .api.auth import auth_middleware
from .api.errors import error_middleware
from .api.httpmetrics import http_metrics_middleware
from .api.keys import DEPENDENCIES, READY, REGISTRY, ROUTE_INDEX, ROUTES, SETTINGS
from .api.routes import add_routes
from .api.validation import BATCH_BODY_LIMIT

FEATURES = [health, cache, latency, audit, desk, ops]


def create_app(settings, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the sidecar application on `registry` (a fresh one when None).

    Switches prometheus-client's `_created` samples off for the process: nothing reads
    them, and they were over a quarter of a scrape's lines.
    """
    disable_created_metrics()
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    app = web.Application(
        middlewares=[http_metrics_middleware, error_middleware, limits.limits_middleware,
                     auth_middleware, limits.rate_middleware],
        client_max_size=BATCH_BODY_LIMIT,
        handler_args=limits.handler_args(),
    )
    app[SETTINGS] = settings
    limits.setup(app)  # the web configuration: TLS, users, headers, rate limit
    app[REGISTRY] = registry
    app[READY] = {}
    app[DEPENDENCIES] = {}
    routes = []
    for feature in FEATURES:
        routes.extend(feature.setup(app))
    app[ROUTES] = routes
    app[ROUTE_INDEX] = add_routes(app, routes)
    app.on_response_prepare.append(_server_header)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name the product, not the aiohttp and Python versions an attacker would look up."""
    response.headers["Server"] = "usdcop-exporter"
