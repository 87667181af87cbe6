"""The exact Redis layout of docs/library.md, checked with a plain Redis client, and the
Redis backend's explicit connection settings."""

from __future__ import annotations

import asyncio
import json

from exporter.cache import MetricsCache, RedisClient, SignalCache
from exporter.cache.redis_backend import redact_url
from tests.cache.helpers import iso, make_signal


async def test_key_layout_types_and_ttls(redis_url, redis_namespace, raw_redis):
    client = RedisClient(namespace=redis_namespace, url=redis_url)
    signals, trading = SignalCache(client, history_max=3), MetricsCache(client)
    for i in range(5):
        await signals.record(make_signal(seconds_ago=10 - i, signal_id=f"s{i}"))
    await trading.set_financial_metrics({"timestamp": iso(), "total_pnl": 1.5})
    await trading.set_position({"position_id": "p", "symbol": "USDCOP", "side": "SHORT",
                                "quantity": 1, "entry_price": 4000, "entry_time": iso()})
    await trading.set_custom_metric("drift", 0.5)
    await client.set("generic", {"a": 1})
    ns = redis_namespace
    expected = {
        f"{ns}:signal:latest": b"string",
        f"{ns}:signal:history:USDCOP": b"list",
        f"{ns}:metrics:financial": b"string",
        f"{ns}:position:active:USDCOP": b"string",
        f"{ns}:metrics:custom:drift": b"string",
        f"{ns}:generic": b"string",
    }
    for key, kind in expected.items():
        assert await raw_redis.type(key) == kind, key
    for key in list(expected)[:5]:
        assert await raw_redis.ttl(key) == -1, f"{key} must not expire"
    assert 295 <= await raw_redis.ttl(f"{ns}:generic") <= 300
    history = [json.loads(v)["signal_id"] for v in await raw_redis.lrange(f"{ns}:signal:history:USDCOP", 0, -1)]
    assert history == ["s4", "s3", "s2"]  # newest first, LTRIMmed to the cap
    assert json.loads(await raw_redis.get(f"{ns}:signal:latest"))["signal_id"] == "s4"
    assert json.loads(await raw_redis.get(f"{ns}:metrics:custom:drift")) == 0.5
    await client.close()


async def test_an_engine_writing_with_a_plain_client_is_read_back(redis_url, redis_namespace, raw_redis):
    sig = make_signal()
    await raw_redis.set(f"{redis_namespace}:signal:latest", json.dumps(sig))
    await raw_redis.lpush(f"{redis_namespace}:signal:history:USDCOP", json.dumps(sig))
    client = RedisClient(namespace=redis_namespace, url=redis_url)
    signals = SignalCache(client)
    assert await signals.get_latest("USDCOP") == sig
    assert await signals.get_history("USDCOP") == [sig]
    await client.close()


async def test_connection_settings_are_explicit(redis_url):
    client = RedisClient(url=redis_url)
    await client.exists("x")
    pool = client.backend._client().connection_pool
    kw = pool.connection_kwargs
    assert kw["socket_timeout"] == 1.0
    assert kw["socket_connect_timeout"] == 1.0
    assert kw["health_check_interval"] == 10
    assert kw["retry"].get_retries() == 1
    assert pool.max_connections == 16
    assert pool.timeout == 1.0
    await client.close()


def test_a_new_event_loop_gets_its_own_connections(redis_url, redis_namespace):
    client = RedisClient(namespace=redis_namespace, url=redis_url)

    async def use(value):
        await client.set("loop", value)
        return await client.get("loop")

    assert asyncio.run(use(1)) == 1
    assert asyncio.run(use(2)) == 2  # a process-wide client survives asyncio.run() twice
    asyncio.run(client.clear())


def test_urls_are_redacted():
    assert redact_url("redis://user:secret@cache.internal:6380/2") == "redis://cache.internal:6380/2"
    assert "secret" not in redact_url("rediss://:secret@h/0")
