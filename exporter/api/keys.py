"""Typed application keys shared by the app factory and the handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

SETTINGS: web.AppKey[Any] = web.AppKey("settings", object)  # exporter.settings.Settings
REGISTRY = web.AppKey("registry", CollectorRegistry)
ROUTE_INDEX: web.AppKey[dict] = web.AppKey("route_index", dict)
ROUTES: web.AppKey[list] = web.AppKey("routes", list)
READY: web.AppKey[dict] = web.AppKey("ready", dict)  # component name → bool
# Dependency name → callable giving its current state for /readyz (e.g. {"up": False}).
DEPENDENCIES: web.AppKey[dict] = web.AppKey("dependencies", dict)
