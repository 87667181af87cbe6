"""The signal cache is bounded: a signal's encoded size (CACHE_MAX_SIGNAL_BYTES, 413) and the
number of symbols with a history (CACHE_MAX_SYMBOLS, 422), on both backends, and the bytes
the in-memory backend holds (CACHE_MAX_BYTES, 507), counted in
usdcop_limit_rejections_total; and DELETE really drops what the in-memory backend held."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from exporter.api.cache import CACHE
from exporter.app import create_app
from exporter.cache import RedisClient, SignalCache
from exporter.cache.errors import CacheFull, SignalTooLarge, TooManySymbols
from exporter.cache.values import dumps
from exporter.settings import load_settings
from tests.cache.helpers import make_signal

PATH = "/api/cache/signals"
SYMBOLS = ("AAAUSD", "BBBUSD", "CCCUSD")


def limit_count(registry, limit: str) -> float:
    return registry.get_sample_value("usdcop_limit_rejections_total", {"limit": limit}) or 0.0


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    return request.param


@pytest.fixture
def make_api(backend, aiohttp_client, registry, tmp_path, redis_url, redis_namespace):
    """The whole sidecar (limits middleware included) with the cache caps given."""

    async def make(**caps: str):
        services = tmp_path / "services.yaml"
        services.write_text("services: []\n")
        env = {"EXPORTER_CONFIG": str(services), "EXPORTER_SCHEDULER": "off",
               "AUDIT_SQLITE_PATH": str(tmp_path / "audit.sqlite3"),
               "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
               "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
               "REDIS_NAMESPACE": redis_namespace, **caps}
        if backend == "redis":
            env["REDIS_URL"] = redis_url
        return await aiohttp_client(create_app(load_settings(env), registry))

    return make


@pytest.fixture
async def api(make_api):
    """The sidecar with small caps: 3 symbols, 4 KiB a signal."""
    return await make_api(CACHE_MAX_SYMBOLS="3", CACHE_MAX_SIGNAL_BYTES="4KiB")


def padded(symbol: str, size: int, **fields) -> dict:
    """A signal whose JSON is exactly `size` bytes."""
    signal = make_signal(symbol, features={"pad": ""}, **fields)
    base = len(dumps(signal))
    signal["features"]["pad"] = "x" * (size - base)
    assert len(dumps(signal)) == size
    return signal


async def test_a_signal_over_the_size_cap_is_413_and_nothing_is_written(api, registry):
    resp = await api.post(PATH, json=padded("USDCOP", 4096))
    assert resp.status == 201  # exactly at the cap
    resp = await api.post(PATH, json=padded("USDCOP", 4097, signal_id="too-big"))
    body = await resp.json()
    assert resp.status == 413, body
    assert body["error"] == "payload_too_large"
    assert "4097 bytes" in body["detail"] and "at most 4096 (CACHE_MAX_SIGNAL_BYTES)" in body["detail"]
    latest = await (await api.get(PATH)).json()
    assert latest["signal"]["signal_id"] != "too-big"
    history = await (await api.get(PATH, params={"type": "history", "symbol": "USDCOP"})).json()
    assert len(history["signals"]) == 1
    assert limit_count(registry, "signal_size") == 1
    assert limit_count(registry, "body") == 0


async def test_a_new_symbol_over_the_symbol_cap_is_422_and_deleting_one_makes_room(api, registry):
    for symbol in SYMBOLS:
        assert (await api.post(PATH, json=make_signal(symbol))).status == 201
    resp = await api.post(PATH, json=make_signal("DDDUSD"))
    body = await resp.json()
    assert resp.status == 422, body
    assert body["error"] == "too_many_symbols" and body["field"] == "symbol"
    assert "at most 3 (CACHE_MAX_SYMBOLS)" in body["detail"] and "DDDUSD" in body["detail"]
    assert (await (await api.get(PATH)).json())["signal"]["symbol"] == "CCCUSD"  # unchanged
    # a symbol that has a history is still written to
    assert (await api.post(PATH, json=make_signal("AAAUSD", seconds_ago=1))).status == 201
    assert (await api.delete(PATH, params={"symbol": "BBBUSD"})).status == 200
    assert (await api.post(PATH, json=make_signal("DDDUSD"))).status == 201
    assert (await api.post(PATH, json=make_signal("EEEUSD"))).status == 422
    assert await (await api.delete(PATH)).json() == {"cleared": 4}
    for symbol in ("EEEUSD", "FFFUSD", "GGGUSD"):
        assert (await api.post(PATH, json=make_signal(symbol))).status == 201
    assert limit_count(registry, "symbols") == 2


async def test_histories_other_writers_made_count_against_the_cap(redis_url, redis_namespace, raw_redis):
    for symbol in SYMBOLS:  # a trading engine's own writes, straight to Redis
        await raw_redis.lpush(f"{redis_namespace}:signal:history:{symbol}", b"{}")
    client = RedisClient(namespace=redis_namespace, url=redis_url)
    try:
        cache = SignalCache(client, max_symbols=3)
        with pytest.raises(TooManySymbols) as info:
            await cache.record(make_signal("DDDUSD"))
        assert info.value.limit == "symbols" and info.value.maximum == 3
        assert not await raw_redis.exists(f"{redis_namespace}:signal:history:DDDUSD")
        await cache.record(make_signal("AAAUSD"))  # an existing symbol is fine
        with pytest.raises(SignalTooLarge):
            await cache.set_latest(make_signal("AAAUSD", features={"pad": "x" * ((64 << 10) - 20)}))
    finally:
        await client.close()


async def test_the_symbol_count_is_refreshed_when_others_delete(clock):
    client = RedisClient(namespace="t")
    cache = SignalCache(client, max_symbols=2, clock=clock)
    for symbol in SYMBOLS[:2]:
        await cache.record(make_signal(symbol))
    with pytest.raises(TooManySymbols):
        await cache.record(make_signal("CCCUSD"))
    await client.delete("signal:history:AAAUSD")  # behind the cache's back
    with pytest.raises(TooManySymbols):
        await cache.record(make_signal("CCCUSD"))  # counted less than 10 s ago
    clock.advance(10)
    await cache.record(make_signal("CCCUSD"))  # counted again: there is room


def cache_layer_bytes() -> int:
    """Bytes allocated by the cache layer's code and still alive (tracemalloc's account)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/exporter/cache/*")])
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_delete_drops_every_byte_the_memory_backend_held(api, backend):
    if backend != "memory":
        pytest.skip("the in-memory backend's own accounting")
    store = api.server.app[CACHE].client.backend
    features = {f"f{i}": "v" * 800 for i in range(4)}
    tracemalloc.start()
    try:
        for symbol in SYMBOLS:
            for n in range(20):
                sig = make_signal(symbol, seconds_ago=n, signal_id=f"{symbol}-{n}", features=features)
                assert (await api.post(PATH, json=sig)).status == 201
        held = store.bytes_held("signals")
        assert held > 3 * 20 * 3200
        other = store.bytes_held() - held  # e.g. the desk's reconciliation ledger
        assert other < 4096
        gc.collect()
        full = cache_layer_bytes()
        assert full > held  # the stored values, as tracemalloc sees them
        assert (await api.delete(PATH)).status == 200
        gc.collect()
        after = cache_layer_bytes()
    finally:
        tracemalloc.stop()
    assert store.bytes_held("signals") == 0 and store.bytes_held() == other
    assert after < held / 10  # freed, not referenced from anywhere


async def test_memory_accounting_follows_trims_overwrites_and_expiry(clock):
    client = RedisClient(namespace="t", clock=clock)
    store = client.backend
    cache = SignalCache(client, history_max=2)
    sizes = []
    for n in range(3):
        sig = make_signal("USDCOP", seconds_ago=10 - n, signal_id=f"s{n}")
        await cache.record(sig)
        sizes.append(len(dumps(sig)))
    key_bytes = len("t:signal:latest") + len("t:signal:history:USDCOP")
    # the latest is the third signal; the history keeps the last two
    assert store.bytes_held("signals") == key_bytes + sizes[2] + sizes[1] + sizes[2]
    await client.set("generic-key", "x" * 100, ttl=5)
    assert store.bytes_held("generic") == len("t:generic-key") + 102
    clock.advance(6)
    store.sweep()
    assert store.bytes_held("generic") == 0
    await cache.clear("USDCOP")
    assert store.bytes_held() == 0


async def test_the_memory_backend_refuses_writes_beyond_its_byte_budget(make_api, backend, registry):
    api = await make_api(CACHE_MAX_BYTES="1MiB")
    store = api.server.app[CACHE].client.backend
    written, status, n = 0, 201, 0
    while status == 201 and n < 100:
        n += 1
        sig = padded(SYMBOLS[n % 3], 60_000, signal_id=f"s{n}", seconds_ago=100 - n)
        resp = await api.post(PATH, json=sig)
        status = resp.status
        written += status == 201
    if backend == "redis":
        assert status == 201  # Redis has its own maxmemory; the budget is the embedded store's
        return
    body = await resp.json()
    assert status == 507, body
    assert body["error"] == "cache_full" and "(CACHE_MAX_BYTES)" in body["detail"]
    assert 8 <= written <= 17  # two copies of the latest signal, one in its history
    assert store.bytes_held() <= 1 << 20
    history = await (await api.get(PATH, params={"type": "history", "symbol": SYMBOLS[n % 3]})).json()
    assert f"s{n}" not in [s["signal_id"] for s in history["signals"]]  # nothing was written
    assert limit_count(registry, "cache_bytes") == 1
    assert (await api.delete(PATH, params={"symbol": SYMBOLS[1]})).status == 200
    assert (await api.post(PATH, json=padded(SYMBOLS[1], 60_000, signal_id="again"))).status == 201


async def test_a_push_onto_a_full_history_frees_what_it_trims(clock):
    client = RedisClient(namespace="t", clock=clock, max_bytes=4096)
    for _ in range(5):
        await client.list_push("signal:history:USDCOP", "x" * 500, cap=3)  # 3 x ~500 bytes kept
    held = client.backend.bytes_held()
    assert held < 2000
    await client.list_push("signal:history:USDCOP", "y" * 500, cap=3)  # net growth 0: passes
    assert client.backend.bytes_held() == held
    await client.set("big", "z" * 2000, ttl=0)
    with pytest.raises(CacheFull):
        await client.set("bigger", "z" * 2000, ttl=0)
    assert not await client.exists("bigger")
    await client.set("big", "z" * 100, ttl=0)  # shrinking always passes
    await client.set("bigger", "z" * 2000, ttl=0)


async def test_concurrent_new_symbols_do_not_overshoot_the_cap(redis_url, redis_namespace, raw_redis):
    client = RedisClient(namespace=redis_namespace, url=redis_url)
    try:
        cache = SignalCache(client, max_symbols=2)
        await cache.record(make_signal("AAAUSD"))
        results = await asyncio.gather(*(cache.record(make_signal(f"NEW{i}USD")) for i in range(6)),
                                       return_exceptions=True)
        assert sum(not isinstance(r, BaseException) for r in results) == 1
        assert all(isinstance(r, TooManySymbols) for r in results if isinstance(r, BaseException))
        keys = [k async for k in raw_redis.scan_iter(match=f"{redis_namespace}:signal:history:*")]
        assert len(keys) == 2
    finally:
        await client.close()
