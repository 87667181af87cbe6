"""Freshness judged by session: overdue only while open, with an allowance after each open."""

from __future__ import annotations

from types import MappingProxyType

from exporter.cache.mirror import SignalView, Snapshot
from exporter.config import parse_config
from exporter.desk.calendar import TradingCalendar
from exporter.desk.freshness import judge
from tests.desk.test_calendar import at

DESK = parse_config("""
services: []
desk:
  freshness:
    signal_cadence: {USDCOP: 5m, EURUSD: 1m}
    financial_metrics_cadence: 1m
    overdue_factor: 3
""").desk
CALENDAR = TradingCalendar.from_config(DESK)  # Bogotá, Mon-Fri 08:00-13:00


def snapshot(signals: dict[str, float], financial_at: float | None, read: bool = True) -> Snapshot:
    views = {s: SignalView("BUY", 0.8, 4000.0, t, None) for s, t in signals.items()}
    financial = {} if financial_at is None else {"pnl": 1.0, "financial_metrics_timestamp_seconds": financial_at}
    return Snapshot(redis_configured=True, redis_up=True, last_success=0.0 if read else None,
                    signals=MappingProxyType(views), financial=MappingProxyType(financial))


def test_overdue_after_cadence_times_factor_during_a_session():
    now = at("2025-03-03T10:00:00-05:00")
    snap = snapshot({"USDCOP": now - 15 * 60 - 1, "EURUSD": now - 179}, now - 181)
    fresh = judge(snap, DESK, CALENDAR, now)
    assert fresh.signal_age == {"USDCOP": 901, "EURUSD": 179}
    assert fresh.signal_overdue == {"USDCOP": True, "EURUSD": False}
    assert fresh.financial_overdue is True
    exactly = judge(snapshot({"USDCOP": now - 900}, now - 180), DESK, CALENDAR, now)
    assert exactly.signal_overdue["USDCOP"] is False and exactly.financial_overdue is False


def test_nothing_is_overdue_outside_sessions():
    for closed in ("2025-03-03T13:00:00-05:00", "2025-03-08T10:00:00-05:00", "2025-03-04T07:59:00-05:00"):
        now = at(closed)
        fresh = judge(snapshot({"USDCOP": now - 86400}, now - 86400), DESK, CALENDAR, now)
        assert fresh.signal_overdue == {"USDCOP": False, "EURUSD": False}, closed
        assert fresh.financial_overdue is False
        assert fresh.signal_age["USDCOP"] == 86400  # the age itself is always honest


def test_each_session_starts_with_a_full_allowance():
    opened = at("2025-03-04T08:00:00-05:00")
    yesterday = at("2025-03-03T12:59:00-05:00")
    snap = snapshot({"USDCOP": yesterday}, yesterday)
    assert judge(snap, DESK, CALENDAR, opened + 14 * 60).signal_overdue["USDCOP"] is False
    assert judge(snap, DESK, CALENDAR, opened + 15 * 60 + 1).signal_overdue["USDCOP"] is True
    assert judge(snap, DESK, CALENDAR, opened + 179).financial_overdue is False
    assert judge(snap, DESK, CALENDAR, opened + 181).financial_overdue is True


def test_a_symbol_with_a_cadence_and_no_signal_is_overdue_after_the_allowance():
    opened = at("2025-03-04T08:00:00-05:00")
    assert judge(snapshot({}, None), DESK, CALENDAR, opened + 60).signal_overdue["EURUSD"] is False
    late = judge(snapshot({}, None), DESK, CALENDAR, opened + 181)
    assert late.signal_overdue == {"USDCOP": False, "EURUSD": True}
    assert late.financial_overdue is True
    assert late.signal_age == {}  # no signal: no age, never a false 0


def test_no_verdicts_before_the_mirror_has_read_anything():
    now = at("2025-03-03T10:00:00-05:00")
    fresh = judge(snapshot({}, None, read=False), DESK, CALENDAR, now)
    assert fresh.signal_overdue == {} and fresh.financial_overdue is None


def test_without_cadences_only_ages_are_exported():
    bare = parse_config("services: []\n").desk
    now = at("2025-03-03T10:00:00-05:00")
    fresh = judge(snapshot({"USDCOP": now - 5}, now), bare, CALENDAR, now)
    assert fresh.signal_age == {"USDCOP": 5} and fresh.signal_overdue == {}
    assert fresh.financial_overdue is None
