"""The composition root: create_app(settings, registry) builds the whole sidecar.

create_app builds the parts every feature shares and stores them under the typed keys of
exporter/api/keys.py: the settings, the metrics registry, the core metrics, the health
checker over services.yaml and its reloader. Each feature module under exporter/api/ has
`setup(app) -> list[Route]`: it creates its own components from those (appending
one-`yield` contexts to `app.cleanup_ctx` for anything with I/O), stores them under its
own typed AppKey, and returns its routes. Features are set up in FEATURES order; the desk
uses the cache's (and, when set up, the audit's) components. Cleanup runs in reverse order.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from .api import audit, cache, desk, health, latency, limits, ops
from .api.auth import auth_middleware
from .api.errors import error_middleware
from .api.httpmetrics import http_metrics_middleware
from .api.keys import (
    CHECKER,
    CORE_METRICS,
    DEPENDENCIES,
    READY,
    REGISTRY,
    RELOADER,
    ROUTE_INDEX,
    ROUTES,
    SETTINGS,
)
from .api.routes import add_routes
from .api.validation import BATCH_BODY_LIMIT
from .health.checker import HealthChecker
from .health.registry import ServiceRegistry
from .health.reload import ConfigReloader, load_services
from .metrics import CoreMetrics
from .settings import Settings

FEATURES: tuple[ModuleType, ...] = (health, cache, latency, audit, desk, ops)


def create_app(settings: Settings, registry: CollectorRegistry | None = None,
               features: Sequence[ModuleType] = FEATURES) -> web.Application:
    """Build the sidecar application on `registry` (a fresh one when None).

    `features` (a subset of FEATURES, in that order) are the features set up; the web
    configuration, the core metrics and the checker over `settings.config` are always
    there (ConfigError propagates). The desk needs the cache before it. Switches
    prometheus-client's `_created` samples off for the process: nothing reads them, and
    they were over a quarter of a scrape's lines.
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
    _shared_parts(app, settings, registry)
    routes = []
    for feature in features:
        routes.extend(feature.setup(app))
    app[ROUTES] = routes
    app[ROUTE_INDEX] = add_routes(app, routes)
    app.on_response_prepare.append(_server_header)
    return app


def _shared_parts(app: web.Application, settings: Settings, registry: CollectorRegistry) -> None:
    """The core metrics, the checker over the services file and its reloader."""
    metrics = CoreMetrics(registry)
    app[CORE_METRICS] = metrics
    checker = HealthChecker(ServiceRegistry(load_services(settings.config)),
                            shard=(settings.shard_index, settings.shard_count))
    app[CHECKER] = checker
    reloader = ConfigReloader(checker, metrics, settings.config)
    reloader.loaded()
    app[RELOADER] = reloader


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name the product, not the aiohttp and Python versions an attacker would look up."""
    response.headers["Server"] = "usdcop-exporter"
