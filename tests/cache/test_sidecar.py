"""The cache feature inside the whole sidecar (create_app): auth, /metrics, /readyz, and
`<ns>:health:<service>` published from real probes of a real loopback target."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from exporter.app import create_app
from exporter.settings import load_settings
from tests.cache.helpers import make_signal

TOKEN = "cache-test-token"
PATH = "/api/cache/signals"


async def _healthy(request):
    return web.json_response({"status": "healthy", "details": {"uptime": 10}})


@pytest.fixture
async def target(aiohttp_server):
    app = web.Application()
    app.router.add_get("/ok", _healthy)
    return await aiohttp_server(app, host="127.0.0.1")


@pytest.fixture
async def sidecar(aiohttp_client, registry, tmp_path, target, redis_url, redis_namespace):
    path = tmp_path / "services.yaml"
    path.write_text(f"services:\n  - name: up-svc\n    url: http://127.0.0.1:{target.port}/ok\n"
                    "    interval: 20s\n")
    settings = load_settings({
        "EXPORTER_CONFIG": str(path), "EXPORTER_SCHEDULER": "off", "EXPORTER_API_TOKEN": TOKEN,
        "REDIS_URL": redis_url, "REDIS_NAMESPACE": redis_namespace, "MIRROR_INTERVAL": "200ms",
        "AUDIT_SQLITE_PATH": str(tmp_path / "audit.sqlite3"), "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
        "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
    })
    return await aiohttp_client(create_app(settings, registry))


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := await predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def test_writes_need_the_token_reads_do_not(sidecar):
    resp = await sidecar.post(PATH, json=make_signal())
    assert resp.status == 401
    assert (await sidecar.delete(PATH)).status == 401
    assert (await sidecar.post(PATH, json=make_signal(), headers=AUTH)).status == 201
    assert (await (await sidecar.get(PATH)).json())["signal"]["symbol"] == "USDCOP"


async def test_signals_reach_metrics_and_readyz_shows_redis(sidecar):
    await sidecar.post(PATH, json=make_signal(confidence=0.66), headers=AUTH)

    async def mirrored():
        text = await (await sidecar.get("/metrics")).text()
        return text if 'usdcop_signal_confidence{symbol="USDCOP"} 0.66' in text else None

    text = await until(mirrored, what="the signal in /metrics")
    assert "usdcop_redis_up 1.0" in text
    assert 'usdcop_signal_history_length{symbol="USDCOP"} 1.0' in text
    assert 'usdcop_cache_requests_total{cache="signals",result="hit"}' in text
    assert "usdcop_cache_entries" not in text  # Redis backend: entries are Redis' business
    ready = await (await sidecar.get("/readyz")).json()
    assert ready["components"]["cache"] is True
    assert ready["dependencies"]["redis"]["up"] is True


async def test_probe_results_are_published_to_redis(sidecar, raw_redis, redis_namespace):
    resp = await sidecar.post("/api/health/services", json={"service": "up-svc"}, headers=AUTH)
    assert resp.status == 200
    health = await resp.json()
    key = f"{redis_namespace}:health:up-svc"

    async def stored():
        return await raw_redis.get(key)

    assert json.loads(await until(stored, what=key)) == health
    assert 59_000 <= await raw_redis.pttl(key) <= 60_000  # 3 × the 20 s interval
