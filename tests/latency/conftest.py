"""Latency test helpers: a hand-driven clock, and the latency feature as a small real app."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import web

from exporter.api import latency
from exporter.api.errors import error_middleware
from exporter.api.keys import READY, REGISTRY, SETTINGS
from exporter.api.routes import add_routes
from exporter.api.validation import BATCH_BODY_LIMIT
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock starting at a fixed instant."""
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def mono() -> FakeClock:
    """A fake monotonic clock."""
    return FakeClock(start=1000.0)


def latency_app(registry, middlewares=(), **overrides) -> web.Application:
    """The latency feature alone behind the sidecar's error middleware (plus `middlewares`)."""
    app = web.Application(
        middlewares=[error_middleware, *middlewares], client_max_size=BATCH_BODY_LIMIT
    )
    settings = {"latency_window": 10_000, "latency_max_pairs": 500, **overrides}
    app[SETTINGS] = SimpleNamespace(**settings)
    app[REGISTRY] = registry
    app[READY] = {}
    add_routes(app, latency.setup(app))
    return app


@pytest.fixture
def make_latency_app():
    """The builder of a latency-only app: make_latency_app(registry, middlewares=(), **settings)."""
    return latency_app
