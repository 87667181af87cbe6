"""The in-memory backend: FIFO cap on expiring entries, TTL, cleanup every 60 s, metrics."""

from __future__ import annotations

from exporter.cache import RedisClient


def make(clock, cache_metrics, max_entries=3) -> RedisClient:
    return RedisClient(ttl=300, namespace="t", max_entries=max_entries, clock=clock,
                       metrics=cache_metrics)


def evictions(registry, cache, reason):
    return registry.get_sample_value("usdcop_cache_evictions_total", {"cache": cache, "reason": reason})


def entries(registry, cache):
    return registry.get_sample_value("usdcop_cache_entries", {"cache": cache})


async def test_fifo_evicts_the_oldest_expiring_entry(clock, cache_metrics, registry):
    c = make(clock, cache_metrics)
    for key in ("a", "b", "c"):
        await c.set(key, key)
        clock.advance(1)
    await c.set("d", "d")
    assert await c.keys() == ["b", "c", "d"]
    assert evictions(registry, "generic", "capacity") == 1
    assert evictions(registry, "generic", "ttl") == 0


async def test_rewriting_a_key_makes_it_the_newest(clock, cache_metrics):
    c = make(clock, cache_metrics)
    for key in ("a", "b", "c"):
        await c.set(key, key)
    await c.set("a", "again")  # a is now the newest write: b goes first
    await c.set("d", "d")
    assert await c.keys() == ["a", "c", "d"]


async def test_persistent_entries_are_never_evicted_nor_counted_in_the_cap(clock, cache_metrics, registry):
    c = make(clock, cache_metrics)
    await c.set("signal:latest", {"s": 1}, ttl=0)
    await c.list_push("signal:history:USDCOP", {"s": 1}, cap=100)
    for i in range(10):
        await c.set(f"g{i}", i)
    assert await c.get("signal:latest") == {"s": 1}
    assert await c.list_len("signal:history:USDCOP") == 1
    assert sorted(await c.keys("g*")) == ["g7", "g8", "g9"]
    assert evictions(registry, "generic", "capacity") == 7
    assert evictions(registry, "signals", "capacity") == 0
    assert entries(registry, "signals") == 2
    assert entries(registry, "generic") == 3


async def test_expired_entries_make_room_before_anything_is_evicted(clock, cache_metrics, registry):
    c = make(clock, cache_metrics)
    await c.set("short", 1, ttl=10)
    await c.set("b", 2)
    await c.set("c", 3)
    clock.advance(11)
    await c.set("d", 4)  # the cap is reached, but "short" has expired: it goes, not "b"
    assert await c.keys() == ["b", "c", "d"]
    assert evictions(registry, "generic", "ttl") == 1
    assert evictions(registry, "generic", "capacity") == 0


async def test_ttl_boundary(clock, cache_metrics):
    c = make(clock, cache_metrics)
    await c.set("k", 1, ttl=30)
    clock.advance(29.999)
    assert await c.get("k") == 1
    clock.advance(0.001)
    assert await c.get("k") is None


async def test_expired_entries_are_swept_every_60_seconds(clock, cache_metrics, registry):
    c = make(clock, cache_metrics, max_entries=100)
    for i in range(5):
        await c.set(f"k{i}", i, ttl=10)
    await c.set("keep", 1, ttl=0)
    clock.advance(30)
    await c.exists("keep")  # an operation before the 60 s mark: no sweep yet
    assert entries(registry, "generic") == 6
    assert evictions(registry, "generic", "ttl") == 0
    clock.advance(30)
    await c.exists("keep")  # 60 s since the last sweep: expired entries go
    assert entries(registry, "generic") == 1
    assert evictions(registry, "generic", "ttl") == 5


async def test_sweep_can_be_driven_directly(clock, cache_metrics):
    c = make(clock, cache_metrics, max_entries=100)
    await c.set("a", 1, ttl=1)
    clock.advance(2)
    assert c.backend.sweep() == 1
    assert c.backend.entries() == 0


async def test_entries_by_cache_label(clock, cache_metrics, registry):
    c = make(clock, cache_metrics)
    await c.set("metrics:financial", {"timestamp": "x"}, ttl=0)
    await c.set("position:active:USDCOP", {}, ttl=0)
    await c.set("anything", 1)
    assert entries(registry, "metrics") == 2
    assert entries(registry, "generic") == 1
    assert entries(registry, "signals") == 0
    await c.clear()
    assert entries(registry, "metrics") == 0
