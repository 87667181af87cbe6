"""One contract for RedisClient, run against the in-memory backend and the machine's Redis."""

from __future__ import annotations

import math

import pytest

from exporter.cache import CacheTypeError, CacheValueError, RedisClient


async def test_json_values_round_trip(client):
    values = {"s": "text é", "n": 42, "f": 4250.5, "obj": {"a": [1, 2, {"b": None}]},
              "list": [1, "two"], "t": True}
    for key, value in values.items():
        await client.set(key, value)
    for key, value in values.items():
        assert await client.get(key) == value


async def test_missing_key_is_none_and_counted_as_miss(client, registry):
    assert await client.get("absent") is None
    await client.set("present", 1)
    assert await client.get("present") == 1
    sample = registry.get_sample_value
    assert sample("usdcop_cache_requests_total", {"cache": "generic", "result": "miss"}) == 1
    assert sample("usdcop_cache_requests_total", {"cache": "generic", "result": "hit"}) == 1


async def test_delete_and_exists(client):
    await client.set("k", {"v": 1})
    assert await client.exists("k")
    assert await client.delete("k") is True
    assert await client.delete("k") is False
    assert not await client.exists("k")
    assert await client.get("k") is None


async def test_default_ttl_expires(client, expire):
    short = RedisClient(ttl=0.05, namespace=client.namespace, backend=client.backend)
    await short.set("k", "v")  # ttl=None: the client's default
    assert await short.get("k") == "v"
    await expire(short, "k", 0.05)
    assert await short.get("k") is None


async def test_explicit_ttl_overrides_default(client, expire):
    await client.set("short", 1, ttl=0.05)
    await client.set("long", 2)  # default 300 s
    await expire(client, "short", 0.05)
    assert await client.get("short") is None
    assert await client.get("long") == 2


async def test_ttl_zero_never_expires(client, clock, raw_redis):
    await client.set("state", {"x": 1}, ttl=0)
    if client.is_redis:
        assert await raw_redis.pttl(client.key("state")) == -1
    else:
        clock.advance(10 * 365 * 86400)
    assert await client.get("state") == {"x": 1}


async def test_keys_are_relative_and_match_a_pattern(client):
    for key in ("signal:latest", "signal:history:USDCOP", "metrics:financial", "other"):
        await client.set(key, 1)
    assert await client.keys("signal:*") == ["signal:history:USDCOP", "signal:latest"]
    assert await client.keys() == ["metrics:financial", "other", "signal:history:USDCOP", "signal:latest"]


async def test_clear_removes_only_this_namespace(client, redis_url):
    other = RedisClient(namespace=client.namespace + "_other", backend=client.backend)
    await client.set("a", 1)
    await client.list_push("l", 1, cap=5)
    await other.set("a", 2)
    assert await client.clear() == 2
    assert await client.keys() == []
    assert await other.get("a") == 2
    await other.clear()


async def test_list_push_keeps_newest_first_and_caps(client):
    for i in range(7):
        length = await client.list_push("hist", {"i": i}, cap=5)
    assert length == 5
    assert await client.list_len("hist") == 5
    assert [v["i"] for v in await client.list_range("hist")] == [6, 5, 4, 3, 2]
    assert [v["i"] for v in await client.list_range("hist", 0, 1)] == [6, 5]
    assert [v["i"] for v in await client.list_range("hist", -2, -1)] == [3, 2]
    assert await client.list_range("hist", 10, 20) == []
    assert await client.list_range("nothing") == []
    assert await client.list_len("nothing") == 0


async def test_list_push_skip_if_head(client):
    assert await client.list_push("h", {"a": 1}, cap=5, skip_if_head=True) == 1
    assert await client.list_push("h", {"a": 1}, cap=5, skip_if_head=True) == 1
    assert await client.list_push("h", {"a": 2}, cap=5, skip_if_head=True) == 2
    assert await client.list_push("h", {"a": 1}, cap=5, skip_if_head=True) == 3
    assert await client.list_push("h", {"a": 1}, cap=5) == 4


async def test_atomic_applies_everything(client):
    await client.set("gone", 1)
    async with client.atomic() as tx:
        tx.set("latest", {"v": 1}, ttl=0)
        tx.list_push("hist", {"v": 1}, cap=3)
        tx.delete("gone")
    assert tx.results == [1, 1, 1]
    assert await client.get("latest") == {"v": 1}
    assert await client.list_range("hist") == [{"v": 1}]
    assert not await client.exists("gone")


async def test_atomic_sends_nothing_when_the_block_raises(client):
    with pytest.raises(RuntimeError):
        async with client.atomic() as tx:
            tx.set("a", 1)
            raise RuntimeError("caller changed its mind")
    assert not await client.exists("a")


async def test_atomic_refuses_a_push_onto_a_string_and_writes_nothing(client):
    await client.set("hist", "a string", ttl=0)
    with pytest.raises(CacheTypeError, match="holds a string, not a list"):
        async with client.atomic() as tx:
            tx.set("latest", {"v": 1}, ttl=0)
            tx.list_push("hist", {"v": 1}, cap=3)
    assert not await client.exists("latest")
    assert await client.get("hist") == "a string"


async def test_atomic_refuses_set_then_push_on_the_same_key(client):
    with pytest.raises(CacheTypeError):
        async with client.atomic() as tx:
            tx.set("k", 1)
            tx.list_push("k", 2, cap=3)
    assert not await client.exists("k")


async def test_type_errors_name_the_problem(client):
    await client.list_push("list", 1, cap=3)
    await client.set("str", 1)
    with pytest.raises(CacheTypeError):
        await client.get("list")
    with pytest.raises(CacheTypeError):
        await client.list_push("str", 1, cap=3)
    with pytest.raises(CacheTypeError):
        await client.list_range("str")


async def test_a_stored_value_that_is_not_json_is_an_error_naming_the_key(client):
    await client.backend.set(client.key("junk"), b"{not json", 0)
    with pytest.raises(CacheValueError, match=f"{client.namespace}:junk does not hold JSON"):
        await client.get("junk")
    await client.backend.set(client.key("nan"), b"NaN", 0)
    with pytest.raises(CacheValueError, match="NaN is not valid JSON"):
        await client.get("nan")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.set("k", math.nan), CacheValueError, "not JSON-serialisable"),
        (lambda c: c.set("k", {1, 2}), CacheValueError, "not JSON-serialisable"),
        (lambda c: c.set("k", 1, ttl=-1), ValueError, "ttl must be a number of seconds >= 0"),
        (lambda c: c.set("k", 1, ttl=math.inf), ValueError, "ttl must be"),
        (lambda c: c.set("k", 1, ttl=True), ValueError, "ttl must be"),
        (lambda c: c.set("", 1), ValueError, "key must be a non-empty string"),
        (lambda c: c.get("x" * 2000), ValueError, "longer than 1024"),
        (lambda c: c.list_push("k", 1, cap=0), ValueError, "cap must be a positive integer"),
        (lambda c: c.list_range("k", "0", 1), ValueError, "start must be an integer"),
        (lambda c: c.keys(""), ValueError, "pattern must be a non-empty string"),
    ],
    ids=["nan", "set-type", "negative-ttl", "infinite-ttl", "bool-ttl", "empty-key",
         "long-key", "zero-cap", "string-index", "empty-pattern"],
)
async def test_bad_arguments_change_nothing(client, call, error, message):
    with pytest.raises(error, match=message):
        await call(client)
    assert await client.keys() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": "bad namespace"}, "namespace must match"),
        ({"namespace": "a*"}, "namespace must match"),
        ({"ttl": -5}, "ttl must be"),
        ({"max_entries": 0}, "max_entries must be a positive integer"),
        ({"url": "http://localhost:6379"}, "redis url must be redis://"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RedisClient(**kwargs)
