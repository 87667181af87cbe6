"""Latency test helpers: a hand-driven clock, and the latency feature alone in a sidecar."""

from __future__ import annotations

import pytest

from exporter.api import latency
from tests.support.apps import feature_app
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock starting at a fixed instant."""
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def mono() -> FakeClock:
    """A fake monotonic clock."""
    return FakeClock(start=1000.0)


@pytest.fixture
def make_latency_app(tmp_path):
    """The builder of a latency-only sidecar: make_latency_app(registry, middlewares=(), **fields)
    (Settings fields; a latency window of 10,000 and 500 pairs unless given)."""

    def make(registry, middlewares=(), **fields):
        fields = {"latency_window": 10_000, "latency_max_pairs": 500, **fields}
        return feature_app(tmp_path, registry, (latency,), middlewares, **fields)

    return make
