"""A real sidecar app (create_app) over a services file pointing at real loopback targets."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.support.apps import sidecar_app


async def _healthy(request):
    return web.json_response({"status": "healthy", "details": {"uptime": 10, "requests_per_minute": 120,
                                                               "error_rate": 0.01, "memory_usage_mb": 64}})


async def _down(request):
    return web.json_response({"status": "fail"}, status=503, content_type="application/health+json")


@pytest.fixture
async def target(aiohttp_server):
    """A real HTTP target on a free loopback port: /ok (seed healthy), /down (503 IETF fail)."""
    app = web.Application()
    app.router.add_get("/ok", _healthy)
    app.router.add_get("/down", _down)
    return await aiohttp_server(app, host="127.0.0.1")


def services_yaml(target, extra: str = "") -> str:
    """A services file with an up and a down service on `target`."""
    base = f"http://127.0.0.1:{target.port}"
    return f"""
services:
  - name: up-svc
    url: {base}/ok
    labels: {{team: desk}}
  - name: down-svc
    url: {base}/down
    critical: false
{extra}"""


@pytest.fixture
def make_app(tmp_path, registry):
    """Build the sidecar from a services text and environment overrides → (app, its path)."""

    def make(services_text: str, **env: str):
        return sidecar_app(tmp_path, registry, services_text, **env), tmp_path / "services.yaml"

    return make


@pytest.fixture
async def sidecar(aiohttp_client, make_app, target):
    """A test client on a real sidecar with the scheduler off."""
    app, _ = make_app(services_yaml(target))
    return await aiohttp_client(app)
