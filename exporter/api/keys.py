"""Typed application keys for the parts create_app builds and hands to every feature."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from ..exposition import SegmentCache
from ..health.checker import HealthChecker
from ..health.reload import ConfigReloader
from ..metrics import CoreMetrics
from ..settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REGISTRY = web.AppKey("registry", CollectorRegistry)
# The process-wide metrics: HTTP requests, probe scheduling, reloads, build info.
CORE_METRICS = web.AppKey("core_metrics", CoreMetrics)
CHECKER = web.AppKey("checker", HealthChecker)  # the services of this shard and their health
RELOADER = web.AppKey("reloader", ConfigReloader)  # swaps a new services.yaml in
ROUTE_INDEX: web.AppKey[dict] = web.AppKey("route_index", dict)
ROUTES: web.AppKey[list] = web.AppKey("routes", list)
READY: web.AppKey[dict] = web.AppKey("ready", dict)  # component name → bool
# Dependency name → callable giving its current state for /readyz (e.g. {"up": False}).
DEPENDENCIES: web.AppKey[dict] = web.AppKey("dependencies", dict)
# /metrics with gzip: the last scrape's large pieces, compressed, for the next scrape.
GZIP_SEGMENTS = web.AppKey("gzip_segments", SegmentCache)
