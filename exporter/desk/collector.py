"""Desk metrics built at scrape time from in-memory state (no I/O): market, freshness,
halt, risk utilization, reconciliation, clock tolerance."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .freshness import judge
from .halt import HALT_REASONS, UNREADABLE
from .service import Desk


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


class DeskCollector(Collector):
    """Exports the desk's view; a series whose source has nothing to say is absent."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def describe(self) -> list[Metric]:
        return []  # families are dynamic

    def collect(self) -> Iterator[Metric]:
        desk = self.desk
        now = desk.clock()
        config = desk.config()
        calendar = desk.calendar()
        yield from self._market(calendar, now)
        snapshot = desk.mirror.snapshot
        fresh = judge(snapshot, config, calendar, now)
        age = _gauge("usdcop_signal_age_seconds", "Age of the latest signal per symbol.", ["symbol"])
        for symbol, seconds in sorted(fresh.signal_age.items()):
            age.add_metric([symbol], seconds)
        overdue = _gauge("usdcop_signal_overdue",
                         "1 when a symbol's signal is later than cadence × overdue_factor while "
                         "the market is open.", ["symbol"])
        for symbol, late in sorted(fresh.signal_overdue.items()):
            overdue.add_metric([symbol], 1 if late else 0)
        yield from (age, overdue)
        financial = _gauge("usdcop_financial_metrics_overdue",
                           "1 when the financial snapshot is later than its cadence × "
                           "overdue_factor while the market is open.")
        if fresh.financial_overdue is not None:
            financial.add_metric([], 1 if fresh.financial_overdue else 0)
        yield financial
        yield from self._halt()
        yield from self._risk(snapshot)
        yield from self._reconciliation()
        tolerance = _gauge("usdcop_clock_tolerance_seconds",
                           "desk.clock_tolerance: the clock skew alerts allow.")
        tolerance.add_metric([], config.clock_tolerance)
        yield tolerance
        if desk.max_future_skew is not None:
            future = _gauge("usdcop_audit_max_future_skew_seconds",
                            "AUDIT_MAX_FUTURE_SKEW: how far ahead an audit event time may be.")
            future.add_metric([], desk.max_future_skew)
            yield future

    def _market(self, calendar, now: float) -> Iterator[Metric]:
        market = _gauge("usdcop_market_open", "1 while a trading session runs.")
        market.add_metric([], 1 if calendar.is_open(now) else 0)
        nxt_open = _gauge("usdcop_market_next_open_timestamp_seconds",
                          "When the next trading session opens.")
        nxt_close = _gauge("usdcop_market_next_close_timestamp_seconds",
                           "When the running (or next) trading session closes.")
        opens, closes = calendar.next_open(now), calendar.next_close(now)
        if opens is not None:
            nxt_open.add_metric([], opens)
        if closes is not None:
            nxt_close.add_metric([], closes)
        yield from (market, nxt_open, nxt_close)

    def _halt(self) -> Iterator[Metric]:
        view = self.desk.halt.view
        halted = _gauge("usdcop_trading_halted",
                        "1 for the reason trading is halted (usdcop:trading:halted), else 0.",
                        ["reason"])
        if view.read:
            current = view.reason
            for reason in HALT_REASONS:
                halted.add_metric([reason], 1 if current == reason else 0)
            if current == UNREADABLE:
                halted.add_metric([UNREADABLE], 1)
        yield halted
        since = _gauge("usdcop_trading_halted_timestamp_seconds", "When the halt in force began.")
        if view.halt is not None:
            since.add_metric([], view.halt.since)
        yield since

    def _risk(self, snapshot) -> Iterator[Metric]:
        risk = self.desk.risk
        readings = risk.readings()
        use = _gauge("usdcop_risk_limit_utilization",
                     "Each risk limit's use: value ÷ limit (limit ÷ value for a minimum).", ["limit"])
        threshold = _gauge("usdcop_risk_limit_threshold",
                           "The configured limit (ratio, account currency, quantity or count).",
                           ["limit"])
        for name, reading in sorted(readings.items()):
            use.add_metric([name], reading.utilization)
            threshold.add_metric([name], reading.threshold)
        yield from (use, threshold)
        session = _gauge("usdcop_session_pnl",
                         "usdcop_pnl minus its value at the session's open (the daily-loss baseline).")
        baseline, pnl = risk.baseline, snapshot.financial.get("pnl")
        if baseline is not None and pnl is not None and "daily_loss" in readings:
            session.add_metric([], pnl - baseline.pnl)
        yield session

    def _reconciliation(self) -> Iterator[Metric]:
        reconciler = self.desk.reconciler
        report = reconciler.report if reconciler is not None else None
        mismatch = _gauge("usdcop_position_mismatch",
                          "1 when the audit trail's net open quantity differs from Redis.", ["symbol"])
        orphans = _gauge("usdcop_orphan_trades",
                         "Trades in the orphan window with no earlier SIGNAL_GENERATED of their signal.")
        stale = _gauge("usdcop_stale_positions",
                       "Positions open longer than desk.reconciliation.stale_position_after.")
        last = _gauge("usdcop_reconciliation_last_success_timestamp_seconds",
                      "When the last reconciliation completed.")
        if report is not None:
            for row in report["positions"]:
                mismatch.add_metric([row["symbol"]], 1 if row["mismatch"] else 0)
            orphans.add_metric([], len(report["orphan_trades"]))
            stale.add_metric([], len(report["stale_positions"]))
            last.add_metric([], report["checked_at_ts"])
        yield from (mismatch, orphans, stale, last)
