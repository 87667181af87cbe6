"""The demo's trading engine, writing through the real library parts (in-memory cache,
SQLite audit store, latency monitor and performance logger)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from prometheus_client import CollectorRegistry

from exporter.audit.logger import AuditLogger
from exporter.audit.verify import verify_store
from exporter.cache.client import RedisClient
from exporter.cache.signals import SignalCache, validate_signal
from exporter.cache.trading_metrics import MetricsCache, validate_financial, validate_position
from exporter.demo.engine import ACTOR, DemoEngine, EngineParts
from exporter.latency.metrics import LatencyMetrics
from exporter.latency.monitor import LatencyMonitor
from exporter.latency.performance import PerformanceLogger
from exporter.settings import Settings

TICKS = 30


@pytest.fixture
async def parts(tmp_path, registry: CollectorRegistry):
    client = RedisClient()
    metrics = LatencyMetrics(registry)
    monitor = LatencyMonitor(metrics=metrics)
    audit = AuditLogger.from_settings(Settings(audit_sqlite_path=str(tmp_path / "a.sqlite3")))
    await audit.start()
    try:
        yield EngineParts(SignalCache(client), MetricsCache(client), monitor,
                          PerformanceLogger("trading-engine", metrics=metrics,
                                            guard=monitor.guard), audit)
    finally:
        await audit.close()
        await client.close()


async def test_a_run_leaves_consistent_state_everywhere(parts, registry):
    engine = DemoEngine(parts, seed=7)
    for _ in range(TICKS):
        await engine.tick()
    assert engine.book.trades > 0 and engine.book.realized, "with this random seed the engine trades within 30 rounds"

    # Signals: valid, latest per symbol, full history.
    for symbol in engine.symbols:
        latest = await parts.signals.get_latest(symbol)
        assert validate_signal(latest) == latest and latest["symbol"] == symbol
        assert len(await parts.signals.get_history(symbol, limit=100)) == TICKS
    # Positions in Redis are exactly the engine's open ones.
    for symbol in engine.symbols:
        stored = await parts.metrics.get_position(symbol)
        assert stored == engine.positions.get(symbol)
        if stored is not None:
            validate_position(stored)
    financial = await parts.metrics.get_financial_metrics()
    assert validate_financial(financial) == financial
    assert financial["active_positions"] == len(engine.positions)
    assert financial["total_trades"] == engine.book.trades
    assert financial["max_drawdown"] <= 0 and 0 <= financial["win_rate"] <= 1
    custom = await parts.metrics.get_custom_metrics()
    assert custom["engine_ticks"] == TICKS and set(custom) >= {"fx_spread_bps", "model_drift_score"}

    # Latency records and timed operations reached the sidecar's histogram.
    def count(service, operation):
        return registry.get_sample_value("usdcop_operation_latency_seconds_count",
                                         {"service": service, "operation": operation})

    rounds = TICKS * len(engine.symbols)
    assert count("trading-engine", "generate_signal") == rounds
    assert count("market-data", "fetch_quote") == rounds
    assert count("trading-engine", "publish_metrics") == TICKS
    assert count("broker-gateway", "place_order") >= engine.book.trades
    assert parts.performance.get_metrics("generate_signal")["count"] == rounds

    # Audit: one SIGNAL_GENERATED per signal, a TRADE_EXECUTED per trade, a valid chain.
    trail = await parts.audit.get_audit_trail(limit=1000)
    by_type: dict[str, int] = {}
    for event in trail["events"]:
        by_type[event["event_type"]] = by_type.get(event["event_type"], 0) + 1
        assert event["actor"] == ACTOR
    assert by_type["SIGNAL_GENERATED"] == rounds
    assert by_type["TRADE_EXECUTED"] == engine.book.trades
    assert by_type["POSITION_CLOSED"] == len(engine.book.realized)
    assert by_type["POSITION_OPENED"] == by_type["POSITION_CLOSED"] + len(engine.positions)
    result = await verify_store(parts.audit.store, None)
    assert result["ok"] and result["checked"] == len(trail["events"])
    assert engine.audit_failures == 0


async def test_the_same_seed_gives_the_same_run(parts):
    def actions(summary):
        return [(s["symbol"], s["action"], s["price"]) for s in summary["signals"]]

    a, b = DemoEngine(parts, seed=11), DemoEngine(parts, seed=11)
    assert [actions(await a.tick()) for _ in range(5)] == [actions(await b.tick()) for _ in range(5)]


async def test_financial_snapshot_before_any_trade(parts):
    snap = DemoEngine(parts, seed=1).financial_snapshot()
    assert snap["total_trades"] == 0 and snap["win_rate"] == 0.0 and snap["max_drawdown"] == 0
    assert datetime.fromisoformat(snap["timestamp"]).tzinfo is not None


async def test_run_stops_when_asked(parts):
    stop = asyncio.Event()
    engine = DemoEngine(parts, seed=3)
    task = asyncio.create_task(engine.run(0.05, stop))
    while engine.ticks < 2:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert engine.ticks >= 2
