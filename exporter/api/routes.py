"""The route table: every route with its auth level, checked against the router by a test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

LEVELS = ("public", "read", "write", "admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One route: method, path, handler, who may call it, and a line for the OpenAPI document."""

    method: str
    path: str
    handler: Handler
    level: str
    summary: str = ""
    spec: dict | None = None  # OpenAPI operation fields: parameters, requestBody, responses

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"route {self.method} {self.path}: unknown level {self.level!r}")


def add_routes(app: web.Application, routes: list[Route]) -> dict[tuple[str, str], Route]:
    """Add routes to the app's router; returns the (method, path) → Route index."""
    index: dict[tuple[str, str], Route] = {}
    for route in routes:
        key = (route.method, route.path)
        if key in index:
            raise ValueError(f"route {route.method} {route.path} declared twice")
        index[key] = route
        app.router.add_route(route.method, route.path, route.handler)
    return index
