"""The cache usage example of a trading engine, in Python, on both backends (what the getters hand out)."""

from __future__ import annotations

from datetime import UTC, datetime

from exporter.cache import MetricsCache, SignalCache


async def test_seed_usage_example(client):
    signal_cache = SignalCache(client)
    now = datetime.now(UTC).isoformat()
    await signal_cache.set_latest({
        "signal_id": "sig_123",
        "timestamp": now,
        "symbol": "USDCOP",
        "action": "BUY",
        "confidence": 0.85,
        "price": 4250.50,
        "features": {"rsi": 45, "macd": 0.2},
        "model_version": "v1.0",
        "execution_latency_ms": 45,
    })
    latest = await signal_cache.get_latest()
    history = await signal_cache.get_history("USDCOP", 50)
    stats = await signal_cache.get_signal_stats("USDCOP")
    assert latest["signal_id"] == "sig_123"
    assert history == []  # the example sets the latest only; the engine adds history itself
    assert stats["count"] == 0

    metrics_cache = MetricsCache(client)
    await metrics_cache.set_financial_metrics({
        "timestamp": now,
        "total_pnl": 1250.75,
        "win_rate": 0.62,
        "sharpe_ratio": 1.8,
        "max_drawdown": -0.15,
        "total_trades": 45,
        "active_positions": 3,
        "portfolio_value": 50000,
    })
    metrics = await metrics_cache.get_financial_metrics()
    assert metrics["total_pnl"] == 1250.75


async def test_seed_trading_engine_integration(client):
    """A trading engine's processSignal cache part: set_latest then add_to_history."""
    signal_cache = SignalCache(client)
    signal = {"signal_id": "sig_9", "timestamp": datetime.now(UTC).isoformat(), "symbol": "USDCOP",
              "action": "SELL", "confidence": 0.7, "price": 4100.0}
    await signal_cache.set_latest(signal)
    await signal_cache.add_to_history(signal["symbol"], signal)
    assert await signal_cache.get_latest("USDCOP") == signal
    assert await signal_cache.get_history("USDCOP") == [signal]
    assert (await signal_cache.get_signal_stats("USDCOP"))["by_action"]["SELL"] == 1
