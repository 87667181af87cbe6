"""An engine's own cache reads reach the sidecar's usdcop_cache_requests_total through the
forwarder (EXPORTER_URL), from the library's getters to a real sidecar's /metrics."""

from __future__ import annotations

import asyncio
import os

import pytest

import exporter
from exporter import defaults
from tests.cache.helpers import make_signal
from tests.latency.test_latency_sidecar import TOKEN, sidecar  # noqa: F401  (the fixture)

URL = "/api/health/latency"
GETTERS = (defaults._cache_settings, defaults._cache_client, defaults._latency_kit,
           defaults.get_signal_cache, defaults.get_metrics_cache)


def _clear() -> None:
    for getter in GETTERS:
        getter.cache_clear()


@pytest.fixture
def engine_env(monkeypatch, sidecar, redis_url, redis_namespace):  # noqa: F811
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "EXPORTER_API_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPORTER_URL", str(sidecar.make_url("")))
    monkeypatch.setenv("EXPORTER_API_TOKEN", TOKEN)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", redis_namespace)
    _clear()
    yield
    kit = defaults._latency_kit()
    kit.close()
    _clear()


def _requests(registry, cache, result):
    return registry.get_sample_value("usdcop_cache_requests_total",
                                     {"cache": cache, "result": result})


async def test_engine_cache_reads_are_counted_by_the_sidecar(engine_env, sidecar, registry,  # noqa: F811
                                                             aiohttp_client):
    before = {(c, r): _requests(registry, c, r) for c in ("signals", "metrics")
              for r in ("hit", "miss")}
    signals, trading = exporter.get_signal_cache(), exporter.get_metrics_cache()
    await signals.set_latest(make_signal())
    assert await signals.get_latest() is not None          # hit
    assert await signals.get_latest("EURUSD") is None        # miss
    assert await signals.get_history("USDCOP") == []         # miss (no history written)
    assert await trading.get_financial_metrics() is None     # miss
    kit = defaults._latency_kit()
    assert await asyncio.to_thread(kit.forwarder.flush, 30)
    assert kit.forwarder.dropped == 0 and kit.forwarder.cache_reads_dropped == 0

    def added(cache, result):
        return _requests(registry, cache, result) - before[(cache, result)]

    assert (added("signals", "hit"), added("signals", "miss")) == (1, 2)
    assert (added("metrics", "hit"), added("metrics", "miss")) == (0, 1)
    client = await aiohttp_client(sidecar)
    text = await (await client.get("/metrics")).text()
    assert 'usdcop_cache_requests_total{cache="signals",result="miss"} 2.0' in text


async def test_bad_cache_counts_are_refused_by_name_and_nothing_is_recorded(sidecar, registry,  # noqa: F811
                                                                           aiohttp_client):
    client = await aiohttp_client(sidecar)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    record = {"service": "svc", "operation": "op", "latency_ms": 1}
    for bad, field in (
        ({"cache": "sessions", "result": "hit", "count": 1}, "cache_requests[0].cache"),
        ({"cache": "signals", "result": "maybe", "count": 1}, "cache_requests[0].result"),
        ({"cache": "signals", "result": "hit", "count": 0}, "cache_requests[0].count"),
        ({"cache": "signals", "result": "hit", "count": 1.5}, "cache_requests[0].count"),
        ({"cache": "signals", "result": "hit", "count": 1, "x": 1}, "cache_requests[0].x"),
    ):
        body = {"records": [record], "cache_requests": [bad]}
        resp = await client.post(URL, json=body, headers=bearer)
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["field"] == field
    assert registry.get_sample_value("usdcop_cache_requests_total",
                                     {"cache": "signals", "result": "hit"}) == 0
    stats = await (await client.get(URL, params={"service": "svc"})).json()
    assert stats["count"] == 0


async def test_a_forked_engine_sends_only_its_own_cache_counts(sidecar, registry):  # noqa: F811
    from exporter.latency import Forwarder

    forwarder = Forwarder(str(sidecar.make_url("")), TOKEN, linger=60.0)  # the parent's wait
    try:
        forwarder.count_cache("signals", True)  # pending in the parent when it forks
        pid = os.fork()
        if pid == 0:  # the child: count one read of its own, send it, leave at once
            forwarder.count_cache("metrics", False)
            os._exit(0 if forwarder.flush(30) and forwarder.cache_reads_dropped == 0 else 1)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _requests(registry, "metrics", "miss") == 1
        assert _requests(registry, "signals", "hit") == 0  # the parent's count is not the child's
        assert await asyncio.to_thread(forwarder.flush, 30)
        assert _requests(registry, "signals", "hit") == 1
    finally:
        await asyncio.to_thread(forwarder.close)
