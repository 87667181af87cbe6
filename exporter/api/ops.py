"""Operational routes: /metrics, /probe, /healthz, /readyz and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from ..exposition import GZIP_MIN, Pieces, SegmentCache, accepts_gzip, gzip_pieces, render_pieces
from .keys import DEPENDENCIES, GZIP_SEGMENTS, READY, REGISTRY, ROUTES
from .openapi import build_openapi
from .probe import get_probe
from .routes import Route


def setup(app: web.Application) -> list[Route]:
    """The operational routes; nothing to start."""
    app[GZIP_SEGMENTS] = SegmentCache()
    return [
        Route("GET", "/metrics", get_metrics, "read", "Prometheus metrics (OpenMetrics on request)"),
        Route("GET", "/probe", get_probe, "read",
              "Probe one service now, blackbox_exporter style",
              spec={"parameters": [{"name": "service", "in": "query", "required": True,
                                    "schema": {"type": "string"}},
                                   {"name": "debug", "in": "query", "required": False,
                                    "schema": {"type": "string", "enum": ["true", "false"]}}]}),
        Route("GET", "/healthz", get_healthz, "public", "200 while the process serves"),
        Route("GET", "/readyz", get_readyz, "public",
              "200 once configuration is loaded and background tasks run"),
        Route("GET", "/api/openapi.json", get_openapi, "read", "This API's OpenAPI 3 document"),
    ]


async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics: text format, or OpenMetrics when Accept asks for it; gzip when accepted."""
    pieces, content_type = await render_pieces(request.app[REGISTRY], request.headers.get("Accept", ""))
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    size = sum(len(piece) for piece in pieces)
    if size >= GZIP_MIN and accepts_gzip(request.headers.get("Accept-Encoding", "")):
        pieces = await gzip_pieces(pieces, cache=request.app.get(GZIP_SEGMENTS))
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=Pieces(pieces, content_type), headers=headers)


async def get_healthz(request: web.Request) -> web.Response:
    """GET /healthz."""
    return web.json_response({"status": "ok"})


async def get_readyz(request: web.Request) -> web.Response:
    """GET /readyz: ready once every component started; dependencies shown, never fatal."""
    components = dict(request.app[READY])
    dependencies = {name: state() for name, state in request.app[DEPENDENCIES].items()}
    ready = bool(components) and all(components.values())
    return web.json_response(
        {"status": "ready" if ready else "starting", "components": components,
         "dependencies": dependencies},
        status=200 if ready else 503,
    )


async def get_openapi(request: web.Request) -> web.Response:
    """GET /api/openapi.json."""
    return web.json_response(build_openapi(request.app[ROUTES]))
