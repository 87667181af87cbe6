"""SignalCache on both backends: validation, latest, capped history, stats, clear."""

from __future__ import annotations

import pytest

from exporter.cache import CacheValueError, SignalCache, SignalError, validate_signal
from exporter.cache.backend import PushOp
from exporter.cache.errors import CacheTypeError
from tests.cache.helpers import make_signal


@pytest.fixture
def signals(client) -> SignalCache:
    return SignalCache(client, history_max=5)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"signal_id": None}, "signal_id", "is required"),
        ({"timestamp": None}, "timestamp", "is required"),
        ({"timestamp": "2025-01-15T10:30:00"}, "timestamp", "must carry an offset"),
        ({"timestamp": "yesterday"}, "timestamp", "must be an ISO-8601 time"),
        ({"timestamp": 1736937000}, "timestamp", "must be a string"),
        ({"symbol": "usdcop"}, "symbol", "must match"),
        ({"symbol": "US"}, "symbol", "must match"),
        ({"action": "buy"}, "action", "must be one of BUY|SELL|HOLD"),
        ({"confidence": 1.01}, "confidence", "must be <= 1"),
        ({"confidence": -0.1}, "confidence", "must be >= 0"),
        ({"confidence": True}, "confidence", "must be a number, got boolean"),
        ({"confidence": "0.5"}, "confidence", "must be a number, got string"),
        ({"price": 0}, "price", "must be > 0"),
        ({"price": float("inf")}, "price", "must be finite"),
        ({"price": 10**400}, "price", "out of range"),
        ({"execution_latency_ms": -1}, "execution_latency_ms", "must be >= 0"),
        ({"features": [1, 2]}, "features", "must be a JSON object, got array"),
        ({"features": {"x": "y" * 70000}}, "features", "larger than 64 KiB"),
        ({"model_version": 2}, "model_version", "must be a string"),
        ({"signal_id": ""}, "signal_id", "must not be empty"),
        ({"signal_id": "a\x00b"}, "signal_id", "NUL"),
        ({"": 1}, None, "field names must be"),
        ({"a\x00b": 1}, "a\x00b", "field names must be"),
        ({"x" * 257: 1}, "x" * 40, "field names must be"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_signals_name_the_field(change, field, message):
    signal = {**make_signal(), **change}
    signal = {k: v for k, v in signal.items() if v is not None}
    with pytest.raises(SignalError, match=message) as info:
        validate_signal(signal)
    assert info.value.field == field


def test_deeply_nested_features_are_refused():
    deep: dict = {}
    node = deep
    for _ in range(20):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(SignalError, match="nested deeper than 16") as info:
        validate_signal(make_signal(features=deep))
    assert info.value.field == "features"


def test_not_an_object():
    with pytest.raises(SignalError, match="signal must be a JSON object, got array"):
        validate_signal([1])


async def test_invalid_signal_writes_nothing(signals, client):
    with pytest.raises(SignalError):
        await signals.record(make_signal(confidence=2))
    with pytest.raises(SignalError):
        await signals.set_latest(make_signal(price=-1))
    with pytest.raises(SignalError, match="signal is for EURUSD, not USDCOP"):
        await signals.add_to_history("USDCOP", make_signal("EURUSD"))
    assert await client.keys() == []


async def test_set_and_get_latest(signals):
    assert await signals.get_latest() is None
    sig = make_signal()
    assert await signals.set_latest(sig) == sig
    assert await signals.get_latest() == sig
    assert await signals.get_latest("USDCOP") == sig
    assert await signals.get_latest("EURUSD") is None


async def test_latest_per_symbol_is_the_newer_of_latest_and_history_head(signals):
    old, new = make_signal(seconds_ago=60), make_signal(seconds_ago=1)
    await signals.set_latest(old)
    await signals.add_to_history("USDCOP", new)
    assert await signals.get_latest("USDCOP") == new
    await signals.set_latest(make_signal("EURUSD"))
    assert await signals.get_latest("USDCOP") == new  # latest is another symbol's now


async def test_history_newest_first_capped_and_limited(signals):
    for i in range(8):
        await signals.add_to_history("USDCOP", make_signal(seconds_ago=100 - i, signal_id=f"s{i}"))
    history = await signals.get_history("USDCOP")
    assert [s["signal_id"] for s in history] == ["s7", "s6", "s5", "s4", "s3"]
    assert [s["signal_id"] for s in await signals.get_history("USDCOP", limit=2)] == ["s7", "s6"]
    assert await signals.get_history("EURUSD") == []


async def test_record_is_latest_plus_history_and_never_duplicates_on_retry(signals):
    sig = make_signal()
    await signals.record(sig)
    await signals.record(sig)  # a client retrying after a lost answer
    assert await signals.get_latest() == sig
    assert await signals.get_history("USDCOP") == [sig]


@pytest.mark.parametrize("limit", [0, 1001, "5", True])
async def test_bad_limit(signals, limit):
    with pytest.raises(SignalError, match="between 1 and 1000") as info:
        await signals.get_history("USDCOP", limit)
    assert info.value.field == "limit"


async def test_bad_symbol_on_reads(signals):
    with pytest.raises(SignalError, match="must match"):
        await signals.get_history("usd")
    with pytest.raises(SignalError, match="must match"):
        await signals.get_latest("usd")


async def test_stats(signals):
    await signals.add_to_history("USDCOP", make_signal(seconds_ago=30, action="BUY", confidence=0.5,
                                                       execution_latency_ms=10))
    await signals.add_to_history("USDCOP", make_signal(seconds_ago=20, action="SELL", confidence=0.9,
                                                       execution_latency_ms=None))
    first = make_signal(seconds_ago=40, action="HOLD", confidence=0.7, execution_latency_ms=30)
    await signals.add_to_history("USDCOP", first)
    stats = await signals.get_signal_stats("USDCOP")
    assert stats["symbol"] == "USDCOP"
    assert stats["count"] == 3
    assert stats["by_action"] == {"BUY": 1, "SELL": 1, "HOLD": 1}
    assert stats["confidence"]["min"] == 0.5
    assert stats["confidence"]["max"] == 0.9
    assert stats["confidence"]["mean"] == pytest.approx(0.7)
    assert stats["mean_execution_latency_ms"] == 20
    assert stats["first_timestamp"] == first["timestamp"]  # earliest by time, not by position


async def test_stats_when_empty_are_nulls(signals):
    assert await signals.get_signal_stats("USDCOP") == {
        "symbol": "USDCOP", "count": 0, "by_action": {"BUY": 0, "SELL": 0, "HOLD": 0},
        "confidence": {"mean": None, "min": None, "max": None},
        "mean_execution_latency_ms": None, "first_timestamp": None, "last_timestamp": None,
    }


async def test_clear_one_symbol_keeps_another_symbols_latest(signals):
    await signals.record(make_signal("USDCOP"))
    await signals.record(make_signal("EURUSD"))
    assert await signals.clear("USDCOP") == 1  # its history; latest is EURUSD's
    assert await signals.get_history("USDCOP") == []
    assert (await signals.get_latest())["symbol"] == "EURUSD"
    assert await signals.clear("EURUSD") == 2
    assert await signals.get_latest() is None


async def test_clear_everything(signals, client):
    await client.set("unrelated", 1)
    await signals.record(make_signal("USDCOP"))
    await signals.record(make_signal("EURUSD"))
    assert await signals.clear() == 3
    assert await client.keys() == ["unrelated"]


async def test_hits_and_misses(signals, registry):
    await signals.get_latest()
    await signals.record(make_signal())
    await signals.get_latest()
    await signals.get_history("USDCOP")
    sample = registry.get_sample_value
    assert sample("usdcop_cache_requests_total", {"cache": "signals", "result": "miss"}) == 1
    assert sample("usdcop_cache_requests_total", {"cache": "signals", "result": "hit"}) == 2
    assert sample("usdcop_cache_requests_total", {"cache": "generic", "result": "hit"}) == 0


async def test_a_bad_history_entry_is_skipped_and_logged_once(signals, client, logs):
    await signals.add_to_history("USDCOP", make_signal(seconds_ago=10, signal_id="good"))
    await client.backend.execute([PushOp(client.key("signal:history:USDCOP"), b"garbage", 5)])
    assert [s["signal_id"] for s in await signals.get_history("USDCOP")] == ["good"]
    assert [s["signal_id"] for s in await signals.get_history("USDCOP")] == ["good"]
    assert sum("skipping an invalid entry" in line for line in logs) == 1


async def test_an_invalid_latest_is_an_error_naming_the_key(signals, client):
    await client.set("signal:latest", {"symbol": "USDCOP"}, ttl=0)
    with pytest.raises(CacheValueError, match="signal:latest holds an invalid signal"):
        await signals.get_latest()


def test_history_max_must_be_positive(client):
    with pytest.raises(ValueError, match="history_max must be a positive integer"):
        SignalCache(client, history_max=0)



def test_stats_stay_valid_json_with_absurd_latencies():
    import json

    from exporter.cache.signals import signal_stats

    signals = [{"signal_id": str(i), "timestamp": "2026-01-01T00:00:00+00:00", "symbol": "USDCOP",
                "action": "BUY", "confidence": 0.5, "price": 1.0, "execution_latency_ms": 1.5e308}
               for i in range(3)]
    stats = signal_stats("USDCOP", signals)
    assert stats["mean_execution_latency_ms"] == pytest.approx(1.5e308)
    json.dumps(stats, allow_nan=False)  # no Infinity in an API answer


async def test_extra_fields_are_stored_and_known_ones_still_checked(signals):
    sig = make_signal(strategy="mean-reversion", tags=["fx", "latam"])
    stored = await signals.set_latest(sig)
    assert stored == sig
    await signals.add_to_history("USDCOP", sig)
    assert await signals.get_latest() == sig
    assert await signals.get_history("USDCOP") == [sig]
    with pytest.raises(SignalError, match="must be <= 1"):
        await signals.set_latest({**sig, "confidence": 2})


async def test_a_history_stored_as_one_json_array_is_read_newest_first(signals):
    client = signals.client
    older, newer, newest = (make_signal(seconds_ago=s, signal_id=f"s{s}") for s in (30, 20, 10))
    other = make_signal("EURUSD", signal_id="other")
    # Written in no particular order, as a TypeScript engine's JSON.stringify(array) would be.
    await client.set("signal:history:USDCOP", [newer, older, other, {"bad": 1}, newest], ttl=0)
    history = await signals.get_history("USDCOP", limit=2)
    assert [s["signal_id"] for s in history] == ["s10", "s20"]
    assert (await signals.get_latest("USDCOP"))["signal_id"] == "s10"
    stats = await signals.get_signal_stats("USDCOP")
    assert stats["count"] == 3
    # Read-only: a push onto it is refused and changes nothing.
    with pytest.raises(CacheTypeError):
        await signals.add_to_history("USDCOP", make_signal(signal_id="new"))
    assert len(await signals.get_history("USDCOP")) == 3


async def test_a_history_string_that_is_not_an_array_is_a_bad_value(signals):
    await signals.client.set("signal:history:USDCOP", {"not": "an array"}, ttl=0)
    with pytest.raises(CacheValueError, match="neither a list nor a JSON array"):
        await signals.get_history("USDCOP")
