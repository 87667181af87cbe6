"""The latency feature inside the whole sidecar (create_app): forwarding, auth levels, /metrics."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.api.latency import MONITOR
from exporter.app import create_app
from exporter.latency import LatencyLibrary
from exporter.settings import Settings
from tests.support.tools import free_port

URL = "/api/health/latency"
TOKEN = "sidecar-token"


@pytest.fixture
async def sidecar(aiohttp_server, registry, tmp_path):
    config = tmp_path / "services.yaml"
    config.write_text("services: []\n")
    settings = Settings(
        config=str(config),
        scheduler=False,
        api_token=TOKEN,
        listen_host="127.0.0.1",
        latency_max_pairs=50,
        audit_sqlite_path=str(tmp_path / "audit.sqlite3"),
        audit_spool_dir=str(tmp_path / "spool"),
        audit_checkpoint_dir=str(tmp_path / "checkpoints"),
    )
    return await aiohttp_server(create_app(settings, registry), host="127.0.0.1", port=free_port())


async def test_library_records_reach_a_real_sidecar(sidecar, registry, aiohttp_client):
    kit = LatencyLibrary.from_env(
        {
            "EXPORTER_URL": str(sidecar.make_url("")),
            "EXPORTER_API_TOKEN": TOKEN,
            "EXPORTER_SERVICE_NAME": "engine",
        }
    )
    try:
        for i in range(120):
            kit.monitor.record_latency(
                "trading-engine", "process_signal", 20.0 + i, success=i != 7, trace_id=f"trace{i}"
            )
        for _ in range(3):
            with kit.performance.measure("model_inference"):
                pass
        assert await asyncio.to_thread(kit.forwarder.flush, 30)
    finally:
        await asyncio.to_thread(kit.close)
    assert kit.forwarder.dropped == 0

    client = await aiohttp_client(sidecar)
    stats = await (await client.get(URL, params={"service": "trading-engine"})).json()
    assert stats["count"] == 120 and stats["min_ms"] == 20.0 and stats["max_ms"] == 139.0
    assert stats == {**kit.monitor.get_latency_stats("trading-engine"), "operation": None}
    labels = {"service": "trading-engine", "operation": "process_signal"}
    assert registry.get_sample_value("usdcop_operation_latency_seconds_count", labels) == 120
    assert registry.get_sample_value("usdcop_operation_errors_total", labels) == 1
    assert (
        registry.get_sample_value(
            "usdcop_operation_latency_seconds_count",
            {"service": "engine", "operation": "model_inference"},
        )
        == 3
    )

    text = await (await client.get("/metrics")).text()
    assert (
        "usdcop_operation_latency_seconds_count"
        '{operation="process_signal",service="trading-engine"} 120.0' in text
    )
    assert "trace_id" not in text
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    traced = {
        s.exemplar.labels["trace_id"]
        for s in families["usdcop_operation_latency_seconds"].samples
        if s.exemplar
    }
    assert traced and traced <= {f"trace{i}" for i in range(120)}


async def test_auth_levels_of_the_latency_routes(sidecar, aiohttp_client):
    client = await aiohttp_client(sidecar)
    record = {"service": "svc", "operation": "op", "latency_ms": 1}
    assert (await client.post(URL, json=record)).status == 401
    assert (await client.delete(URL)).status == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.post(URL, json=record, headers=bearer)).status == 200
    assert (await client.get(URL, params={"service": "svc"})).status == 200  # read is open
    assert await (await client.delete(URL, headers=bearer)).json() == {"cleared": 1}
    assert len(sidecar.app[MONITOR]) == 0


async def test_a_refusing_sidecar_costs_the_engine_nothing(sidecar):
    kit = LatencyLibrary.from_env(
        {"EXPORTER_URL": str(sidecar.make_url("")), "EXPORTER_API_TOKEN": "wrong"}
    )
    try:
        kit.monitor.record_latency("svc", "op", 3.0)  # the caller never sees the refusal
        assert await asyncio.to_thread(kit.forwarder.flush, 30)
    finally:
        await asyncio.to_thread(kit.close)
    assert kit.monitor.get_latency_stats("svc")["count"] == 1
    assert kit.registry.get_sample_value("usdcop_forwarder_dropped_total") == 1
    assert len(sidecar.app[MONITOR]) == 0


async def test_ready_and_documented(sidecar, aiohttp_client):
    client = await aiohttp_client(sidecar)
    ready = await (await client.get("/readyz")).json()
    assert ready["components"]["latency"] is True
    doc = await (await client.get("/api/openapi.json")).json()
    assert set(doc["paths"][URL]) == {"get", "post", "delete"}
    assert doc["paths"][URL]["post"]["x-auth-level"] == "write"
