"""Freshness judged by session: is each symbol's signal (and the financial snapshot) late?

A value is overdue when, while the market is open, more than cadence × overdue_factor
has passed since the later of its own timestamp and the session's open: the producer
gets a full allowance after each open instead of being late at 08:00:00 because its
last value is from yesterday. Outside sessions nothing is overdue. A symbol with a
cadence and no signal at all is overdue once the allowance after the open has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cache.mirror import Snapshot
from ..config.model import DeskConfig
from .calendar import TradingCalendar


@dataclass(frozen=True)
class Freshness:
    """Ages (seconds) and overdue verdicts; a missing entry is an absent series."""

    signal_age: dict[str, float] = field(default_factory=dict)
    signal_overdue: dict[str, bool] = field(default_factory=dict)
    financial_overdue: bool | None = None


def _overdue(stamp: float | None, session_open: float | None, allowance: float, now: float) -> bool:
    if session_open is None:
        return False
    since = session_open if stamp is None else max(stamp, session_open)
    return now - since > allowance


def judge(snapshot: Snapshot, desk: DeskConfig, calendar: TradingCalendar, now: float) -> Freshness:
    """Freshness now, from the mirror's last snapshot (pure; safe on the scrape path)."""
    ages = {symbol: now - view.timestamp for symbol, view in snapshot.signals.items()}
    if snapshot.last_success is None:
        return Freshness(ages)  # Redis never read: no verdicts rather than false ones
    session = calendar.session_at(now)
    opened = session[0] if session is not None else None
    overdue = {}
    for symbol, cadence in desk.signal_cadence:
        view = snapshot.signals.get(symbol)
        overdue[symbol] = _overdue(view.timestamp if view else None, opened,
                                   cadence * desk.overdue_factor, now)
    financial = None
    if desk.financial_metrics_cadence is not None:
        stamp = snapshot.financial.get("financial_metrics_timestamp_seconds")
        financial = _overdue(stamp, opened, desk.financial_metrics_cadence * desk.overdue_factor, now)
    return Freshness(ages, overdue, financial)
