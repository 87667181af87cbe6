"""Cache fixtures: a fake clock, a client on either backend, a plain Redis client, logs."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from loguru import logger

from exporter.cache import CacheMetrics, RedisClient
from tests.support.clock import FakeClock
from tests.support.private_redis import private_redis  # noqa: F401  (fixture)


@pytest.fixture
def clock() -> FakeClock:
    """A clock for the in-memory backend's TTLs."""
    return FakeClock()


@pytest.fixture
def cache_metrics(registry) -> CacheMetrics:
    """Cache metrics on the test's registry."""
    return CacheMetrics(registry)


@pytest.fixture(params=["memory", "redis"])
async def client(request, clock, cache_metrics, redis_url, redis_namespace):
    """A RedisClient on each backend: in memory (fake clock), and the machine's Redis db 11."""
    url = redis_url if request.param == "redis" else None
    c = RedisClient(namespace=redis_namespace, url=url, clock=clock, metrics=cache_metrics)
    yield c
    await c.close()


@pytest.fixture
async def raw_redis(redis_url):
    """A plain redis-py client on the test database, as a trading engine would use."""
    r = aioredis.from_url(redis_url)
    yield r
    await r.aclose()


@pytest.fixture
def expire(clock):
    """`await expire(client, key, ttl)`: returns once `key` has expired on its backend."""

    async def wait(client: RedisClient, key: str, ttl: float) -> None:
        if not client.is_redis:
            clock.advance(ttl + 0.001)
            return
        deadline = time.monotonic() + 5.0
        while await client.exists(key):
            assert time.monotonic() < deadline, f"{key} did not expire"
            await asyncio.sleep(0.01)

    return wait


@pytest.fixture
def logs():
    """Messages logged through loguru (WARNING and above, plus INFO) during the test."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    yield lines
    logger.remove(sink)
