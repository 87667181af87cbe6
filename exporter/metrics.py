"""The sidecar's own metrics (build, config reload, schedule lag, API, limits) on one registry."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ._version import __version__

LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LIMITS = ("body", "header", "depth", "string", "batch", "connections", "connections_per_client",
          "rate", "auth", "signal_size", "symbols", "cache_bytes")


class CoreMetrics:
    """Metrics the core owns; service metrics come from health.collector instead."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.build_info = Gauge(
            "usdcop_build_info", "Version of the sidecar and of Python, and the event loop.",
            ["version", "python", "loop"], registry=registry,
        )
        self.schedule_lag = Histogram(
            "usdcop_probe_schedule_lag_seconds",
            "Actual start minus planned start of scheduled probes.",
            buckets=LAG_BUCKETS, registry=registry,
        )
        self.scheduler_enabled = Gauge(
            "usdcop_probe_scheduler_enabled",
            "1 while this sidecar probes its services on a schedule; 0 when it probes only "
            "when asked (--no-scheduler).", registry=registry,
        )
        self.reload_ok = Gauge(
            "usdcop_config_last_reload_successful",
            "Whether the last configuration load or reload succeeded.", registry=registry,
        )
        self.reload_ts = Gauge(
            "usdcop_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded or reloaded successfully.", registry=registry,
        )
        self.http_requests = Counter(
            "usdcop_http_requests", "Requests answered by the sidecar's API.",
            ["route", "method", "code"], registry=registry,
        )
        self.http_duration = Histogram(
            "usdcop_http_request_duration_seconds", "Time to answer API requests.",
            ["route", "method", "code"], buckets=HTTP_BUCKETS, registry=registry,
        )
        # (route, method, code) → (counter child, histogram child): bounded like the labels
        self.http_children: dict[tuple, tuple] = {}
        self.limit_rejections = Counter(
            "usdcop_limit_rejections", "Requests refused by a limit.", ["limit"], registry=registry,
        )
        for limit in LIMITS:
            self.limit_rejections.labels(limit)

    def record_build(self, loop: str) -> None:
        """Set usdcop_build_info once the loop (`uvloop` or `asyncio`) is known."""
        self.build_info.clear()
        self.build_info.labels(__version__, platform.python_version(), loop).set(1)
