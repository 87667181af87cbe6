"""`<ns>:health:<service>` written from the checker's results, never blocking the probe path."""

from __future__ import annotations

import json

import pytest

from exporter.cache import HealthWriter, HealthWriterMetrics, RedisClient
from exporter.config.model import ServiceConfig
from exporter.health.checker import HealthChecker, HealthEvent
from exporter.health.result import ProbeResult


@pytest.fixture
async def client(redis_url, redis_namespace):
    c = RedisClient(namespace=redis_namespace, url=redis_url)
    yield c
    await c.close()


async def test_probe_results_are_published_with_a_ttl_of_three_intervals(client, raw_redis, registry):
    writer = HealthWriter(client, metrics=HealthWriterMetrics(registry))
    checker = HealthChecker()
    checker.add_listener(writer.listener)

    async def model_ready():
        return {"success": True, "latency_ms": 3, "metadata": {"model": "xgb"}}

    checker.register_service("model-server", health_check=model_ready, check_interval="20s")
    health = await checker.check_service("model-server")
    assert await writer.flush() == 1
    key = f"{client.namespace}:health:model-server"
    stored = json.loads(await raw_redis.get(key))
    assert stored == health
    assert stored["service"] == "model-server"
    assert stored["status"] == "healthy"
    assert 59_000 <= await raw_redis.pttl(key) <= 60_000


def event(name: str, interval: float = 30.0, status: str = "healthy") -> HealthEvent:
    """A checker event as listeners receive it."""
    return HealthEvent(ServiceConfig(name, "python", interval=interval),
                       {"service": name, "status": status}, "unknown", status,
                       ProbeResult(success=True, duration_s=0.01))


async def test_newer_results_replace_pending_ones(client, raw_redis):
    writer = HealthWriter(client)
    writer.listener(event("a", status="healthy"))
    writer.listener(event("a", status="unhealthy"))
    assert await writer.flush() == 1
    assert json.loads(await raw_redis.get(f"{client.namespace}:health:a"))["status"] == "unhealthy"


async def test_a_full_buffer_drops_and_counts_without_blocking(client, registry, logs):
    writer = HealthWriter(client, max_pending=2, metrics=HealthWriterMetrics(registry))
    for name in ("a", "b", "c", "d"):
        writer.listener(event(name))  # returns at once: no await, no I/O
    writer.listener(event("a", status="degraded"))  # a pending service still updates
    dropped = {"reason": "queue_full"}
    assert registry.get_sample_value("usdcop_health_publish_dropped_total", dropped) == 2
    assert sum("dropping new ones" in line for line in logs) == 1
    assert await writer.flush() == 2
    assert await client.get("health:a", count=False) == {"service": "a", "status": "degraded"}
    assert await client.get("health:c", count=False) is None


async def test_results_that_cannot_be_written_are_dropped_and_counted(private_redis, registry):
    c = RedisClient(namespace="t", url=private_redis.url)
    writer = HealthWriter(c, metrics=HealthWriterMetrics(registry))
    private_redis.stop()
    writer.listener(event("a"))
    writer.listener(event("b"))
    assert await writer.flush() == 0
    dropped = {"reason": "unavailable"}
    assert registry.get_sample_value("usdcop_health_publish_dropped_total", dropped) == 2
    await c.close()
