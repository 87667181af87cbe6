"""Scrape-time exposition of the mirror's snapshot: no I/O, only the last snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .layout import ACTIONS
from .mirror import Mirror, Snapshot

_SIGNAL = {
    "confidence": ("usdcop_signal_confidence", "Confidence (0-1) of the latest signal per symbol."),
    "price": ("usdcop_signal_price", "Price of the latest signal per symbol."),
    "timestamp": ("usdcop_signal_timestamp_seconds", "Time of the latest signal per symbol."),
    "execution_latency_s": ("usdcop_signal_execution_latency_seconds",
                            "Execution latency the latest signal reported, per symbol."),
}
_FINANCIAL = {
    "pnl": "Total profit and loss, in the account currency.",
    "win_ratio": "Share of winning trades (0-1).",
    "sharpe_ratio": "Sharpe ratio.",
    "max_drawdown_ratio": "Maximum drawdown as a negative ratio.",
    "trades": "Number of trades.",
    "active_positions": "Number of active positions.",
    "portfolio_value": "Portfolio value, in the account currency.",
    "financial_metrics_timestamp_seconds": "Time of the financial metrics snapshot.",
}
_POSITION = {
    "quantity": ("usdcop_position_quantity", "Quantity of the active position."),
    "entry_price": ("usdcop_position_entry_price", "Entry price of the active position."),
    "unrealized_pnl": ("usdcop_position_unrealized_pnl", "Unrealized profit and loss of the active position."),
    "opened": ("usdcop_position_opened_timestamp_seconds", "When the active position was opened."),
}


class MirrorCollector(Collector):
    """Builds the trading-state families from `mirror.snapshot` on every scrape."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Every family this collector may expose (so the registry catches name clashes)."""
        yield from _families(Snapshot(redis_configured=self.mirror.client.is_redis), describe=True)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The families of the current snapshot; empty families are left out."""
        yield from _families(self.mirror.snapshot, describe=False)


def _per_symbol(fields: dict[str, tuple[str, str]], views: dict[str, Any]
                ) -> Iterator[GaugeMetricFamily]:
    """One family per (attribute, (name, doc)) of `fields`: each symbol's view's value."""
    for attr, (name, doc) in fields.items():
        family = GaugeMetricFamily(name, doc, labels=["symbol"])
        for symbol, view in sorted(views.items()):
            value = getattr(view, attr)
            if value is not None:
                family.add_metric([symbol], value)
        yield family


def _families(snap: Snapshot, describe: bool) -> Iterator[GaugeMetricFamily]:
    out: list[GaugeMetricFamily] = list(_per_symbol(_SIGNAL, snap.signals))
    action = GaugeMetricFamily("usdcop_signal_action", "Action of the latest signal (one-hot).",
                               labels=["symbol", "action"])
    for symbol, view in sorted(snap.signals.items()):
        for name in ACTIONS:
            action.add_metric([symbol, name], 1.0 if view.action == name else 0.0)
    out.append(action)
    history = GaugeMetricFamily("usdcop_signal_history_length", "Signals kept in the symbol's history.",
                                labels=["symbol"])
    for symbol, length in sorted(snap.history_lengths.items()):
        history.add_metric([symbol], length)
    out.append(history)
    for suffix, doc in _FINANCIAL.items():
        family = GaugeMetricFamily("usdcop_" + suffix, doc)
        if suffix in snap.financial:
            family.add_metric([], snap.financial[suffix])
        out.append(family)
    out.extend(_per_symbol(_POSITION, snap.positions))
    custom = GaugeMetricFamily("usdcop_custom_metric", "Custom metrics the trading engine publishes.",
                               labels=["name"])
    for name, value in sorted(snap.custom.items()):
        custom.add_metric([name], value)
    out.append(custom)
    if snap.redis_configured:
        up = GaugeMetricFamily("usdcop_redis_up", "Whether Redis answered the last mirror read (1/0).")
        if snap.redis_up is not None:
            up.add_metric([], 1.0 if snap.redis_up else 0.0)
        out.append(up)
    last = GaugeMetricFamily("usdcop_mirror_last_success_timestamp_seconds",
                             "When the mirror last read the trading keys completely.")
    if snap.last_success is not None:
        last.add_metric([], snap.last_success)
    out.append(last)
    return iter(out if describe else [f for f in out if f.samples])
