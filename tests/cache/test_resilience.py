"""Redis stopped, frozen and restarted under a running cache feature: the rest keeps serving,
`usdcop_redis_up` says so, one log line per change, writes answer 503, recovery by itself."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import generate_latest

from exporter.api import cache
from exporter.api.cache import CACHE
from tests.cache.helpers import make_signal
from tests.support.apps import feature_app

PATH = "/api/cache/signals"


async def until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `predicate()` until true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def redis_up(registry):
    return registry.get_sample_value("usdcop_redis_up")


async def started(aiohttp_client, registry, server, tmp_path):
    app = feature_app(tmp_path, registry, (cache,), redis_url=server.url, redis_namespace="usdcop", mirror_interval=0.2,
                    mirror_symbols=("USDCOP",))
    client = await aiohttp_client(app)
    await until(lambda: redis_up(registry) == 1, what="the first mirror cycle")
    return client


async def expect_503(resp) -> None:
    body = await resp.json()
    assert resp.status == 503, body
    assert resp.headers["Retry-After"] == "5"
    assert body["error"] == "unavailable"
    assert "redis://127.0.0.1" in body["detail"]
    assert "retry later" in body["detail"]


async def test_redis_stopped_then_restarted(aiohttp_client, registry, private_redis, logs, tmp_path):
    api = await started(aiohttp_client, registry, private_redis, tmp_path)
    assert (await api.post(PATH, json=make_signal())).status == 201
    await until(lambda: registry.get_sample_value("usdcop_signal_confidence", {"symbol": "USDCOP"}) == 0.85,
                what="the signal to be mirrored")

    private_redis.stop()
    await until(lambda: redis_up(registry) == 0, what="usdcop_redis_up 0")
    await expect_503(await api.post(PATH, json=make_signal(seconds_ago=1)))
    await expect_503(await api.get(PATH))
    await expect_503(await api.delete(PATH))
    # Scrapes keep working and keep the last mirrored values (their timestamps show the age).
    text = generate_latest(registry).decode()
    assert "usdcop_redis_up 0.0" in text
    assert 'usdcop_signal_confidence{symbol="USDCOP"} 0.85' in text
    last_success = registry.get_sample_value("usdcop_mirror_last_success_timestamp_seconds")

    private_redis.start()  # same port, empty: nothing was persisted
    await until(lambda: redis_up(registry) == 1, what="recovery without a restart")
    assert registry.get_sample_value("usdcop_mirror_last_success_timestamp_seconds") > last_success
    resp = await api.post(PATH, json=make_signal(seconds_ago=1))
    assert resp.status == 201
    assert (await (await api.get(PATH)).json())["signal"]["symbol"] == "USDCOP"
    assert sum("unreachable" in line for line in logs) == 1
    assert sum("reachable again" in line for line in logs) == 1


async def test_redis_frozen_then_thawed(aiohttp_client, registry, private_redis, logs, tmp_path):
    api = await started(aiohttp_client, registry, private_redis, tmp_path)
    sig = make_signal()
    private_redis.freeze()
    try:
        await expect_503(await api.post(PATH, json=sig))  # the socket timeout, not a hang
        await until(lambda: redis_up(registry) == 0, what="usdcop_redis_up 0 while frozen")
        assert (await api.get("/no-such-route")).status == 404  # the app still serves
    finally:
        private_redis.thaw()
    await until(lambda: redis_up(registry) == 1, what="recovery after SIGCONT")
    # The client retries the signal it got a 503 for: stored once, whatever happened before.
    assert (await api.post(PATH, json=sig)).status == 201
    history = await (await api.get(PATH, params={"type": "history", "symbol": "USDCOP"})).json()
    assert history["signals"] == [sig]
    assert sum("unreachable" in line for line in logs) == 1
    assert sum("reachable again" in line for line in logs) == 1


async def test_redis_down_at_start_up(aiohttp_client, registry, private_redis, tmp_path):
    private_redis.stop()
    app = feature_app(tmp_path, registry, (cache,), redis_url=private_redis.url, redis_namespace="usdcop", mirror_interval=0.2)
    api = await aiohttp_client(app)
    await until(lambda: redis_up(registry) == 0, what="usdcop_redis_up 0 from the start")
    await expect_503(await api.post(PATH, json=make_signal()))
    private_redis.start()
    await until(lambda: redis_up(registry) == 1, what="the first connection")
    assert (await api.post(PATH, json=make_signal())).status == 201


async def test_shutdown_while_frozen_does_not_hang(aiohttp_client, registry, private_redis, tmp_path):
    api = await started(aiohttp_client, registry, private_redis, tmp_path)
    feature = api.app[CACHE]
    private_redis.freeze()
    try:
        async with asyncio.timeout(10):  # cancels and awaits the mirror, closes the pool
            await api.close()
    finally:
        private_redis.thaw()
    assert feature.client.backend._redis is None  # the pool was closed
