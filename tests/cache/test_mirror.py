"""The mirror: a trading engine's keys, written with a plain Redis client, become metrics."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
from prometheus_client import generate_latest

from exporter.cache import Mirror, MirrorCollector, MirrorMetrics, RedisClient, SignalCache
from tests.cache.helpers import iso, make_signal
from tests.support.tools import require_tool


@pytest.fixture
async def mirror_on(redis_url, redis_namespace, registry):
    """`mirror_on(**kwargs)`: a Mirror on the test namespace, its collector on the registry."""
    made = []

    def make(**kwargs) -> Mirror:
        client = RedisClient(namespace=redis_namespace, url=redis_url)
        mirror = Mirror(client, metrics=MirrorMetrics(registry), **kwargs)
        registry.register(MirrorCollector(mirror))
        made.append(client)
        return mirror

    yield make
    for client in made:
        await client.close()


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def errors(registry, kind, reason):
    return registry.get_sample_value("usdcop_mirror_errors_total", {"key_kind": kind, "reason": reason})


async def cycle(mirror: Mirror) -> None:
    await mirror.discover()
    await mirror.refresh()


async def test_seed_keys_written_by_an_engine_are_mirrored(mirror_on, raw_redis, redis_namespace, registry):
    ns = redis_namespace
    sig = make_signal(seconds_ago=5)
    older = make_signal(seconds_ago=50, action="SELL", signal_id="older")
    fin = {"timestamp": iso(), "total_pnl": 1250.75, "win_rate": 0.62, "sharpe_ratio": 1.8,
           "max_drawdown": -0.15, "total_trades": 45, "active_positions": 3, "portfolio_value": 50000,
           "unknown_field": "ignored"}
    pos = {"position_id": "pos_789", "symbol": "USDCOP", "side": "LONG", "quantity": 1000,
           "entry_price": 4250.5, "entry_time": iso(60), "unrealized_pnl": -12.5}
    await raw_redis.set(f"{ns}:signal:latest", json.dumps(sig))
    await raw_redis.rpush(f"{ns}:signal:history:USDCOP", json.dumps(sig), json.dumps(older))
    await raw_redis.set(f"{ns}:metrics:financial", json.dumps(fin))
    await raw_redis.set(f"{ns}:position:active:USDCOP", json.dumps(pos))
    await raw_redis.set(f"{ns}:metrics:custom:model_drift", "0.12")
    await raw_redis.set(f"{ns}:metrics:custom:queue_depth", json.dumps({"value": 7, "timestamp": iso()}))
    mirror = mirror_on(symbols=("USDCOP",))
    await cycle(mirror)
    v = registry.get_sample_value
    s = {"symbol": "USDCOP"}
    assert v("usdcop_signal_confidence", s) == 0.85
    assert v("usdcop_signal_price", s) == 4250.5
    assert v("usdcop_signal_timestamp_seconds", s) == pytest.approx(ts(sig["timestamp"]))
    assert v("usdcop_signal_execution_latency_seconds", s) == pytest.approx(0.045)
    assert v("usdcop_signal_action", {**s, "action": "BUY"}) == 1
    assert v("usdcop_signal_action", {**s, "action": "SELL"}) == 0
    assert v("usdcop_signal_action", {**s, "action": "HOLD"}) == 0
    assert v("usdcop_signal_history_length", s) == 2
    assert v("usdcop_pnl") == 1250.75
    assert v("usdcop_win_ratio") == 0.62
    assert v("usdcop_sharpe_ratio") == 1.8
    assert v("usdcop_max_drawdown_ratio") == -0.15
    assert v("usdcop_trades") == 45
    assert v("usdcop_active_positions") == 3
    assert v("usdcop_portfolio_value") == 50000
    assert v("usdcop_financial_metrics_timestamp_seconds") == pytest.approx(ts(fin["timestamp"]))
    assert v("usdcop_position_quantity", s) == 1000
    assert v("usdcop_position_entry_price", s) == 4250.5
    assert v("usdcop_position_unrealized_pnl", s) == -12.5
    assert v("usdcop_position_opened_timestamp_seconds", s) == pytest.approx(ts(pos["entry_time"]))
    assert v("usdcop_custom_metric", {"name": "model_drift"}) == 0.12
    assert v("usdcop_custom_metric", {"name": "queue_depth"}) == 7
    assert v("usdcop_redis_up") == 1
    assert v("usdcop_mirror_last_success_timestamp_seconds") > 0
    assert v("usdcop_mirror_duration_seconds_count") == 1


async def test_missing_keys_are_absent_series_not_zeros(mirror_on, registry):
    mirror = mirror_on(symbols=("USDCOP",))
    await cycle(mirror)
    text = generate_latest(registry).decode()
    for name in ("usdcop_signal_confidence{", "usdcop_pnl ", "usdcop_position_quantity{",
                 "usdcop_custom_metric{", "usdcop_signal_history_length{"):
        assert name not in text
    assert registry.get_sample_value("usdcop_redis_up") == 1


async def test_a_key_that_disappears_takes_its_series_with_it(mirror_on, raw_redis, redis_namespace, registry):
    key = f"{redis_namespace}:position:active:USDCOP"
    await raw_redis.set(key, json.dumps({"position_id": "p", "symbol": "USDCOP", "side": "LONG",
                                         "quantity": 2, "entry_price": 1, "entry_time": iso()}))
    mirror = mirror_on()
    await cycle(mirror)
    assert registry.get_sample_value("usdcop_position_quantity", {"symbol": "USDCOP"}) == 2
    await raw_redis.delete(key)
    await mirror.refresh()
    assert registry.get_sample_value("usdcop_position_quantity", {"symbol": "USDCOP"}) is None


@pytest.mark.parametrize(
    ("kind", "write", "reason"),
    [
        ("financial", lambda r, k: r.set(k, "{not json"), "not_json"),
        ("financial", lambda r, k: r.set(k, b"\xff\xfe"), "not_json"),
        ("financial", lambda r, k: r.set(k, '{"timestamp": NaN}'), "not_json"),
        ("financial", lambda r, k: r.hset(k, "a", "1"), "wrong_type"),
        ("financial", lambda r, k: r.set(k, json.dumps({"total_pnl": 1})), "invalid"),
        ("financial", lambda r, k: r.set(k, json.dumps({"timestamp": "x" * 3000})), "too_large"),
        ("signal", lambda r, k: r.set(k, json.dumps({"symbol": "USDCOP"})), "invalid"),
        ("signal", lambda r, k: r.lpush(k, "1"), "wrong_type"),
        ("history", lambda r, k: r.lpush(k, json.dumps(make_signal(confidence=3))), "invalid"),
        ("history", lambda r, k: r.lpush(k, json.dumps(make_signal("EURUSD"))), "invalid"),
        ("history", lambda r, k: r.set(k, json.dumps({"not": "an array"})), "invalid"),
        ("history", lambda r, k: r.sadd(k, "x"), "wrong_type"),
        ("position", lambda r, k: r.set(k, json.dumps({"symbol": "USDCOP", "side": "LONG"})), "invalid"),
        ("custom", lambda r, k: r.set(k, '"seven"'), "invalid"),
        ("custom", lambda r, k: r.set(k, "true"), "invalid"),
    ],
)
async def test_bad_values_are_counted_logged_once_and_the_last_good_value_kept(
        mirror_on, raw_redis, redis_namespace, registry, logs, kind, write, reason):
    ns = redis_namespace
    key, good, check = {
        "financial": (f"{ns}:metrics:financial", json.dumps({"timestamp": iso(), "total_pnl": 5}),
                      ("usdcop_pnl", {}, 5)),
        "signal": (f"{ns}:signal:latest", json.dumps(make_signal(confidence=0.25)),
                   ("usdcop_signal_confidence", {"symbol": "USDCOP"}, 0.25)),
        "history": (f"{ns}:signal:history:USDCOP", json.dumps(make_signal(confidence=0.25)),
                    ("usdcop_signal_confidence", {"symbol": "USDCOP"}, 0.25)),
        "position": (f"{ns}:position:active:USDCOP",
                     json.dumps({"position_id": "p", "symbol": "USDCOP", "side": "LONG", "quantity": 3,
                                 "entry_price": 1, "entry_time": iso()}),
                     ("usdcop_position_quantity", {"symbol": "USDCOP"}, 3)),
        "custom": (f"{ns}:metrics:custom:m", "4", ("usdcop_custom_metric", {"name": "m"}, 4)),
    }[kind]
    if kind == "history":
        await raw_redis.lpush(key, good)
    else:
        await raw_redis.set(key, good)
    mirror = mirror_on(value_max=2048)
    await cycle(mirror)
    name, labels, value = check
    assert registry.get_sample_value(name, labels) == value
    await raw_redis.delete(key)
    await write(raw_redis, key)
    for _ in range(3):
        await mirror.refresh()
    assert errors(registry, kind, reason) == 3  # counted on every cycle it is seen
    assert registry.get_sample_value(name, labels) == value  # last good value kept
    assert sum(key in line and f"({reason})" in line for line in logs) == 1  # logged once
    assert registry.get_sample_value("usdcop_redis_up") == 1


async def test_a_history_stored_as_one_json_array_is_read(mirror_on, raw_redis, redis_namespace, registry):
    newest = make_signal("EURUSD", seconds_ago=1, action="HOLD")
    array = [make_signal("EURUSD", seconds_ago=30), newest, make_signal("EURUSD", seconds_ago=20)]
    await raw_redis.set(f"{redis_namespace}:signal:history:EURUSD", json.dumps(array))
    mirror = mirror_on(symbols=("USDCOP",))
    await cycle(mirror)
    s = {"symbol": "EURUSD"}
    assert registry.get_sample_value("usdcop_signal_history_length", s) == 3
    assert registry.get_sample_value("usdcop_signal_action", {**s, "action": "HOLD"}) == 1
    assert registry.get_sample_value("usdcop_signal_timestamp_seconds", s) == pytest.approx(ts(newest["timestamp"]))


async def test_latest_signal_is_the_newer_of_latest_key_and_history_head(mirror_on, raw_redis, redis_namespace, registry):
    ns = redis_namespace
    await raw_redis.set(f"{ns}:signal:latest", json.dumps(make_signal(seconds_ago=100, price=1)))
    await raw_redis.lpush(f"{ns}:signal:history:USDCOP", json.dumps(make_signal(seconds_ago=5, price=2)))
    mirror = mirror_on()
    await cycle(mirror)
    assert registry.get_sample_value("usdcop_signal_price", {"symbol": "USDCOP"}) == 2
    await raw_redis.set(f"{ns}:signal:latest", json.dumps(make_signal(seconds_ago=1, price=3)))
    await mirror.refresh()
    assert registry.get_sample_value("usdcop_signal_price", {"symbol": "USDCOP"}) == 3


async def test_symbols_and_custom_metrics_are_capped_and_overflow_counted(mirror_on, raw_redis, redis_namespace, registry, logs):
    ns = redis_namespace
    for symbol in ("AAA", "BBB", "CCC", "DDD", "EEE"):
        await raw_redis.lpush(f"{ns}:signal:history:{symbol}", json.dumps(make_signal(symbol)))
    for name in ("c1", "c2", "c3"):
        await raw_redis.set(f"{ns}:metrics:custom:{name}", "1")
    mirror = mirror_on(symbols=("USDCOP",), max_symbols=3, max_custom=2)
    await cycle(mirror)
    assert mirror.mirrored_symbols == ("USDCOP", "AAA", "BBB")
    assert mirror.mirrored_custom == ("c1", "c2")
    v = registry.get_sample_value
    assert v("usdcop_mirror_overflow_total", {"kind": "symbol"}) == 3
    assert v("usdcop_mirror_overflow_total", {"kind": "custom"}) == 1
    assert v("usdcop_signal_history_length", {"symbol": "CCC"}) is None
    # A newcomer that sorts first does not push out a symbol already mirrored.
    await raw_redis.lpush(f"{ns}:signal:history:AAB", json.dumps(make_signal("AAB")))
    await raw_redis.delete(f"{ns}:signal:history:BBB")
    await cycle(mirror)
    assert mirror.mirrored_symbols == ("USDCOP", "AAA", "AAB")
    assert v("usdcop_mirror_overflow_total", {"kind": "symbol"}) == 6


async def test_unusable_key_names_are_counted_and_not_mirrored(mirror_on, raw_redis, redis_namespace, registry, logs):
    await raw_redis.lpush(f"{redis_namespace}:signal:history:usd cop", json.dumps(make_signal()))
    await raw_redis.set(f"{redis_namespace}:metrics:custom:bad name!", "1")
    mirror = mirror_on()
    await cycle(mirror)
    await cycle(mirror)
    assert mirror.mirrored_symbols == ("USDCOP",)
    assert mirror.mirrored_custom == ()
    assert errors(registry, "history", "invalid") == 2
    assert errors(registry, "custom", "invalid") == 2
    assert sum("usd cop" in line for line in logs) == 1


async def test_embedded_mode_mirrors_the_in_memory_cache_without_redis_up(registry):
    client = RedisClient(namespace="usdcop")
    await SignalCache(client).record(make_signal())
    mirror = Mirror(client, metrics=MirrorMetrics(registry))
    registry.register(MirrorCollector(mirror))
    await cycle(mirror)
    assert registry.get_sample_value("usdcop_signal_confidence", {"symbol": "USDCOP"}) == 0.85
    assert registry.get_sample_value("usdcop_redis_up") is None
    assert "usdcop_redis_up" not in generate_latest(registry).decode()


async def test_scrape_output_passes_promtool(mirror_on, raw_redis, redis_namespace, registry, tmp_path):
    promtool = require_tool("promtool")
    ns = redis_namespace
    for symbol in ("USDCOP", "EURUSD"):
        await raw_redis.lpush(f"{ns}:signal:history:{symbol}", json.dumps(make_signal(symbol)))
        await raw_redis.set(f"{ns}:position:active:{symbol}", json.dumps(
            {"position_id": "p", "symbol": symbol, "side": "LONG", "quantity": 1, "entry_price": 2,
             "entry_time": iso(), "unrealized_pnl": 0.5}))
    await raw_redis.set(f"{ns}:metrics:financial", json.dumps({"timestamp": iso(), "total_pnl": 1}))
    await raw_redis.set(f"{ns}:metrics:custom:drift", "0.3")
    mirror = mirror_on()
    await cycle(mirror)
    text = generate_latest(registry)
    proc = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(text), 30)
    assert proc.returncode == 0, output
    assert output == b""


def test_bad_mirror_settings():
    client = RedisClient()
    with pytest.raises(ValueError, match="mirror symbol 'usdcop' must match"):
        Mirror(client, symbols=("usdcop",))
    with pytest.raises(ValueError, match="mirror interval must be > 0"):
        Mirror(client, interval=0)
