"""A small app with only the cache feature (and the error middleware), for route tests."""

from __future__ import annotations

from aiohttp import web

from exporter.api import cache
from exporter.api.errors import error_middleware
from exporter.api.keys import DEPENDENCIES, READY, REGISTRY, SETTINGS
from exporter.api.routes import add_routes
from exporter.settings import Settings


def cache_app(registry, **settings) -> web.Application:
    """The cache feature alone on `registry`, configured by Settings fields."""
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = Settings(**settings)
    app[REGISTRY] = registry
    app[READY] = {}
    app[DEPENDENCIES] = {}
    add_routes(app, cache.setup(app))
    return app
