"""Risk limits: utilization per limit, the daily-loss baseline in Redis, one event per breach."""

from __future__ import annotations

import json
import math

import pytest
import redis.asyncio as aioredis

from exporter.audit.own import SidecarEvents
from exporter.cache.mirror import Mirror, PositionView
from exporter.cache.trading_metrics import MetricsCache
from exporter.config import parse_config
from exporter.config.model import RiskLimits
from exporter.desk.calendar import TradingCalendar
from exporter.desk.metrics import DeskMetrics
from exporter.desk.risk import BASELINE_KEY, BREACHES_KEY, Baseline, RiskMonitor, evaluate
from tests.conftest import REDIS_TEST_URL
from tests.desk.test_calendar import at
from tests.support.clock import FakeClock

LIMITS = RiskLimits(max_drawdown=0.10, daily_loss=1000.0, max_position=(("USDCOP", 100.0), ("*", 10.0)),
                    max_open_positions=2, min_win_ratio=0.5, min_trades=20)


def position(quantity: float) -> PositionView:
    return PositionView(quantity, 4000.0, 0.0, None)


def test_each_limit_is_value_over_threshold_and_a_minimum_is_inverted():
    financial = {"max_drawdown_ratio": -0.08, "pnl": 4200.0, "win_ratio": 0.4, "trades": 25.0,
                 "active_positions": 1.0}
    positions = {"USDCOP": position(60.0), "EURUSD": position(9.0), "GBPUSD": position(5.0)}
    readings = evaluate(LIMITS, financial, positions, Baseline(0.0, 5000.0, 0.0))
    got = {name: (r.value, r.threshold, round(r.utilization, 6), r.symbol) for name, r in readings.items()}
    assert got == {
        "max_drawdown": (0.08, 0.10, 0.8, None),  # the negative ratio, as its size
        "daily_loss": (800.0, 1000.0, 0.8, None),  # baseline 5000, now 4200
        "position_size": (9.0, 10.0, 0.9, "EURUSD"),  # the worst symbol, by its own limit
        "open_positions": (3.0, 2.0, 1.5, None),  # three symbols hold positions
        "win_ratio": (0.4, 0.5, 1.25, None),  # a minimum: threshold ÷ value
    }


def test_limits_without_data_or_configuration_are_absent():
    assert evaluate(RiskLimits(), {"pnl": 1.0, "max_drawdown_ratio": -0.5}, {}, None) == {}
    readings = evaluate(LIMITS, {"pnl": 6000.0, "win_ratio": 0.1, "trades": 19.0}, {}, Baseline(0.0, 5000.0, 0.0))
    assert set(readings) == {"daily_loss"}  # too few trades to judge the win ratio
    assert readings["daily_loss"].value == 0.0  # a gain is no loss
    assert evaluate(LIMITS, {"pnl": 1.0}, {}, None) == {}  # no baseline yet
    zero = evaluate(LIMITS, {"win_ratio": 0.0, "trades": 30.0}, {}, None)["win_ratio"]
    assert zero.utilization == math.inf
    unlisted = evaluate(RiskLimits(max_position=(("USDCOP", 5.0),)), {}, {"EURUSD": position(99.0)}, None)
    assert unlisted == {}  # no limit for that symbol and no "*"
    engine_count = evaluate(LIMITS, {"active_positions": 2.0}, {}, None)["open_positions"]
    assert engine_count.utilization == 1.0


DESK = parse_config("""
services: []
desk:
  limits: {max_drawdown: 0.10, daily_loss: 1000, max_position: {USDCOP: 100}}
""").desk


@pytest.fixture
async def trading(redis_client):
    """A MetricsCache writing the trading keys and a real Mirror reading them back."""
    mirror = Mirror(redis_client, symbols=("USDCOP",))
    return MetricsCache(redis_client), mirror


async def financial(cache: MetricsCache, mirror: Mirror, **values) -> None:
    await cache.set_financial_metrics({"timestamp": "2025-03-03T15:00:00Z", **values})
    await mirror.refresh()


def monitor(redis_client, mirror, clock, audit, registry=None, desk=DESK) -> RiskMonitor:
    metrics = DeskMetrics(registry) if registry is not None else None
    calendar = TradingCalendar.from_config(desk)
    return RiskMonitor(redis_client, lambda: mirror.snapshot, lambda: desk, lambda: calendar,
                       audit=SidecarEvents(audit) if audit is not None else None,
                       metrics=metrics, clock=clock)


async def breach_events(audit_logger) -> list[dict]:
    trail = await audit_logger.get_audit_trail(event_type="RISK_LIMIT_BREACHED")
    return [e["data"] for e in reversed(trail["events"])]


async def test_a_breach_writes_one_event_however_often_it_is_seen(
        redis_client, trading, audit_logger, registry):
    cache, mirror = trading
    clock = FakeClock(at("2025-03-03T10:00:00-05:00"))
    risk = monitor(redis_client, mirror, clock, audit_logger, registry)
    await financial(cache, mirror, total_pnl=0.0, max_drawdown=-0.05)
    for _ in range(3):
        await risk.step()
    assert await breach_events(audit_logger) == []
    await financial(cache, mirror, total_pnl=0.0, max_drawdown=-0.12)
    for _ in range(5):
        clock.advance(5)
        await risk.step()
    assert await breach_events(audit_logger) == [
        {"limit": "max_drawdown", "value": 0.12, "threshold": 0.1, "utilization": 1.2}]
    assert registry.get_sample_value("usdcop_risk_limit_breaches_total", {"limit": "max_drawdown"}) == 1
    # Still over 95 %: the same breach. Below it: re-armed, and the next breach is new.
    await financial(cache, mirror, total_pnl=0.0, max_drawdown=-0.096)
    await risk.step()
    await financial(cache, mirror, total_pnl=0.0, max_drawdown=-0.11)
    await risk.step()
    assert len(await breach_events(audit_logger)) == 1
    await financial(cache, mirror, total_pnl=0.0, max_drawdown=-0.09)
    await risk.step()
    await financial(cache, mirror, total_pnl=0.0, max_drawdown=-0.15)
    await risk.step()
    await risk.step()
    events = await breach_events(audit_logger)
    assert [e["value"] for e in events] == [0.12, 0.15]


async def test_a_restart_during_a_breach_writes_no_second_event(
        redis_client, redis_namespace, trading, audit_logger):
    cache, mirror = trading
    clock = FakeClock(at("2025-03-03T10:00:00-05:00"))
    await cache.set_position({"position_id": "p1", "symbol": "USDCOP", "side": "LONG", "quantity": 150,
                              "entry_price": 4000, "entry_time": "2025-03-03T14:00:00Z"})
    await financial(cache, mirror, total_pnl=0.0)
    await monitor(redis_client, mirror, clock, audit_logger).step()
    raw = aioredis.from_url(REDIS_TEST_URL)
    try:
        stored = json.loads(await raw.get(f"{redis_namespace}:{BREACHES_KEY}"))
    finally:
        await raw.aclose()
    assert set(stored) == {"position_size"} and stored["position_size"]["value"] == 150.0
    restarted = monitor(redis_client, mirror, clock, audit_logger)
    await restarted.step()
    await restarted.step()
    events = await breach_events(audit_logger)
    assert events == [{"limit": "position_size", "value": 150.0, "threshold": 100.0, "utilization": 1.5}]
    trail = await audit_logger.get_audit_trail(event_type="RISK_LIMIT_BREACHED")
    assert trail["events"][0]["symbol"] == "USDCOP" and trail["events"][0]["actor"] == "usdcop-exporter"


async def test_the_daily_loss_baseline_is_the_pnl_at_the_open_and_survives_a_restart(
        redis_client, redis_namespace, trading, audit_logger):
    cache, mirror = trading
    clock = FakeClock(at("2025-03-03T08:00:05-05:00"))  # just after Monday's open
    await financial(cache, mirror, total_pnl=5000.0)
    risk = monitor(redis_client, mirror, clock, audit_logger)
    await risk.step()
    assert risk.baseline == Baseline(at("2025-03-03T08:00:00-05:00"), 5000.0, clock.now)
    await financial(cache, mirror, total_pnl=4300.0)
    clock.advance(3600)
    readings = await risk.step()
    assert (readings["daily_loss"].value, readings["daily_loss"].utilization) == (700.0, 0.7)
    # A restart mid-session measures from the stored baseline, not from the pnl it finds.
    restarted = monitor(redis_client, mirror, clock, audit_logger)
    readings = await restarted.step()
    assert restarted.baseline.pnl == 5000.0 and readings["daily_loss"].value == 700.0
    await financial(cache, mirror, total_pnl=3900.0)
    await restarted.step()
    assert await breach_events(audit_logger) == [
        {"limit": "daily_loss", "value": 1100.0, "threshold": 1000.0, "utilization": 1.1}]
    # After the close the last session's loss still shows; the next open starts afresh.
    clock.now = at("2025-03-03T18:00:00-05:00")
    assert restarted.readings()["daily_loss"].value == 1100.0
    clock.now = at("2025-03-04T08:00:01-05:00")
    assert "daily_loss" not in restarted.readings()  # not captured yet: absent, never a false 0
    readings = await restarted.step()
    assert restarted.baseline.session_open == at("2025-03-04T08:00:00-05:00")
    assert restarted.baseline.pnl == 3900.0 and readings["daily_loss"].value == 0.0
    raw = aioredis.from_url(REDIS_TEST_URL)
    try:
        stored = json.loads(await raw.get(f"{redis_namespace}:{BASELINE_KEY}"))
    finally:
        await raw.aclose()
    assert stored["session_open"] == "2025-03-04T13:00:00.000000Z" and stored["pnl"] == 3900.0
    # A new session's loss re-armed the daily-loss breach.
    await financial(cache, mirror, total_pnl=2800.0)
    await restarted.step()
    assert [e["value"] for e in await breach_events(audit_logger)] == [1100.0, 1100.0]


async def test_readings_follow_a_reload_of_the_limits(redis_client, trading):
    cache, mirror = trading
    await financial(cache, mirror, total_pnl=0.0, max_drawdown=-0.05)
    desk = {"now": DESK}
    calendar = TradingCalendar.from_config(DESK)
    risk = RiskMonitor(redis_client, lambda: mirror.snapshot, lambda: desk["now"], lambda: calendar,
                       clock=FakeClock(at("2025-03-03T10:00:00-05:00")))
    assert risk.readings()["max_drawdown"].utilization == 0.5
    desk["now"] = parse_config("services: []\ndesk: {limits: {max_drawdown: 0.05}}\n").desk
    assert risk.readings()["max_drawdown"].utilization == 1.0
