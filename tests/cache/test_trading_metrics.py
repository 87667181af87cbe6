"""MetricsCache on both backends: financial snapshot, positions, custom metrics."""

from __future__ import annotations

import pytest

from exporter.cache import MetricsCache, SignalError
from tests.cache.helpers import iso


@pytest.fixture
def metrics_cache(client) -> MetricsCache:
    return MetricsCache(client)


def financial(**change) -> dict:
    m = {"timestamp": iso(), "total_pnl": 1250.75, "win_rate": 0.62, "sharpe_ratio": 1.8,
         "max_drawdown": -0.15, "total_trades": 45, "active_positions": 3,
         "portfolio_value": 50000}
    m.update(change)
    return {k: v for k, v in m.items() if v is not None}


def position(**change) -> dict:
    p = {"position_id": "pos_789", "symbol": "USDCOP", "side": "LONG", "quantity": 1000,
         "entry_price": 4250.5, "entry_time": iso(), "current_price": 4260.0, "unrealized_pnl": 9500}
    p.update(change)
    return {k: v for k, v in p.items() if v is not None}


async def test_financial_round_trip(metrics_cache):
    assert await metrics_cache.get_financial_metrics() is None
    m = financial(extra_field="kept")
    await metrics_cache.set_financial_metrics(m)
    assert await metrics_cache.get_financial_metrics() == m


async def test_only_timestamp_is_required(metrics_cache):
    m = {"timestamp": iso()}
    await metrics_cache.set_financial_metrics(m)
    assert await metrics_cache.get_financial_metrics() == m


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"timestamp": None}, "timestamp", "is required"),
        ({"win_rate": 1.5}, "win_rate", "must be <= 1"),
        ({"max_drawdown": 0.15}, "max_drawdown", "must be <= 0"),
        ({"total_trades": -1}, "total_trades", "must be >= 0"),
        ({"total_pnl": "12"}, "total_pnl", "must be a number"),
        ({"sharpe_ratio": float("nan")}, "sharpe_ratio", "must be finite"),
    ],
)
async def test_bad_financial_metrics(metrics_cache, client, change, field, message):
    with pytest.raises(SignalError, match=message) as info:
        await metrics_cache.set_financial_metrics(financial(**change))
    assert info.value.field == field
    assert await client.keys() == []


async def test_positions(metrics_cache):
    p = position()
    await metrics_cache.set_position(p)
    assert await metrics_cache.get_position("USDCOP") == p
    assert await metrics_cache.get_position("EURUSD") is None
    assert await metrics_cache.close_position("USDCOP") is True
    assert await metrics_cache.close_position("USDCOP") is False
    assert await metrics_cache.get_position("USDCOP") is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"side": "BUY"}, "side", "must be one of LONG|SHORT"),
        ({"quantity": 0}, "quantity", "must be > 0"),
        ({"entry_price": None}, "entry_price", "is required"),
        ({"entry_time": "2025-01-15 10:30"}, "entry_time", "must carry an offset"),
        ({"symbol": "usd/cop"}, "symbol", "must match"),
        ({"position_id": None}, "position_id", "is required"),
    ],
)
async def test_bad_positions(metrics_cache, client, change, field, message):
    with pytest.raises(SignalError, match=message) as info:
        await metrics_cache.set_position(position(**change))
    assert info.value.field == field
    assert await client.keys() == []


async def test_custom_metrics(metrics_cache):
    await metrics_cache.set_custom_metric("model_drift", 0.12)
    await metrics_cache.set_custom_metric("queue.depth", {"value": 7, "timestamp": iso()})
    assert await metrics_cache.get_custom_metric("model_drift") == 0.12
    assert (await metrics_cache.get_custom_metric("queue.depth"))["value"] == 7
    assert await metrics_cache.get_custom_metric("absent") is None
    assert set(await metrics_cache.get_custom_metrics()) == {"model_drift", "queue.depth"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("bad name", 1, "name: must match"),
        ("x", "1", "must be a number"),
        ("x", True, "must be a number"),
        ("x", {"val": 1}, "value: is required"),
        ("x", {"value": 1, "timestamp": "now"}, "timestamp: must be an ISO-8601"),
    ],
)
async def test_bad_custom_metrics(metrics_cache, client, name, value, message):
    with pytest.raises(SignalError, match=message):
        await metrics_cache.set_custom_metric(name, value)
    assert await client.keys() == []


async def test_custom_metrics_skip_values_that_are_not_json(metrics_cache, client, logs):
    await metrics_cache.set_custom_metric("good", 1)
    await client.backend.set(client.key("metrics:custom:bad"), b"\xff\xfe", 0)
    assert await metrics_cache.get_custom_metrics() == {"good": 1}
    assert any("metrics:custom:bad does not hold JSON" in line for line in logs)


async def test_hits_and_misses(metrics_cache, registry):
    await metrics_cache.get_financial_metrics()
    await metrics_cache.set_financial_metrics(financial())
    await metrics_cache.get_financial_metrics()
    await metrics_cache.get_position("USDCOP")
    sample = registry.get_sample_value
    assert sample("usdcop_cache_requests_total", {"cache": "metrics", "result": "hit"}) == 1
    assert sample("usdcop_cache_requests_total", {"cache": "metrics", "result": "miss"}) == 2
