"""Risk-limit telemetry: each limit's utilization, the daily-loss baseline, breach events.

Utilization is the observed value divided by its limit (for a minimum, such as the win
ratio, the limit divided by the value), so 1.0 means "at the limit" for every kind.
The daily loss is measured from `usdcop_pnl` at the session's open; that baseline is kept
in Redis (`<ns>:desk:daily_loss_baseline`) so a restart does not reset it. A breach
(utilization reaching 1) writes one RISK_LIMIT_BREACHED event; the limit re-arms once
utilization falls below REARM. Which limits are in breach is kept in Redis too
(`<ns>:desk:risk_breaches`), so a restart during a breach writes no second event.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger

from ..cache.client import RedisClient
from ..cache.errors import CacheError
from ..cache.mirror import PositionView, Snapshot
from ..config.model import DeskConfig, RiskLimits
from .calendar import TradingCalendar
from .halt import AuditSink, iso_utc
from .metrics import LIMITS, DeskMetrics

BASELINE_KEY = "desk:daily_loss_baseline"
BREACHES_KEY = "desk:risk_breaches"
REARM = 0.95  # a breached limit is armed again below 95 % utilization
ACTOR = "usdcop-exporter"


@dataclass(frozen=True)
class LimitReading:
    """One limit now: observed value, configured threshold, and their ratio."""

    limit: str
    value: float
    threshold: float
    utilization: float
    symbol: str | None = None  # position_size: the worst symbol


@dataclass(frozen=True)
class Baseline:
    """`usdcop_pnl` at a session's open (Unix seconds), and when it was captured."""

    session_open: float
    pnl: float
    captured_at: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON kept in Redis."""
        return {"session_open": iso_utc(self.session_open), "session_open_ts": self.session_open,
                "pnl": self.pnl, "captured_at": iso_utc(self.captured_at),
                "captured_at_ts": self.captured_at}

    @classmethod
    def from_dict(cls, value: Any) -> Baseline | None:
        """The stored baseline, or None when the value is not one."""
        if not isinstance(value, dict):
            return None
        opened, pnl, at = value.get("session_open_ts"), value.get("pnl"), value.get("captured_at_ts")
        if not all(_finite(v) for v in (opened, pnl, at)):
            return None
        return cls(float(opened), float(pnl), float(at))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _position_limit(limits: RiskLimits, symbol: str) -> float | None:
    table = dict(limits.max_position)
    return table.get(symbol, table.get("*"))


def evaluate(limits: RiskLimits, financial: Mapping[str, float],
             positions: Mapping[str, PositionView], baseline: Baseline | None
             ) -> dict[str, LimitReading]:
    """Readings of every configured limit that has data now (pure; safe on the scrape path)."""
    out: dict[str, LimitReading] = {}
    drawdown = financial.get("max_drawdown_ratio")
    if limits.max_drawdown is not None and drawdown is not None:
        value = abs(drawdown)
        out["max_drawdown"] = LimitReading("max_drawdown", value, limits.max_drawdown,
                                           value / limits.max_drawdown)
    pnl = financial.get("pnl")
    if limits.daily_loss is not None and pnl is not None and baseline is not None:
        loss = max(0.0, baseline.pnl - pnl)
        out["daily_loss"] = LimitReading("daily_loss", loss, limits.daily_loss, loss / limits.daily_loss)
    worst: LimitReading | None = None
    for symbol in sorted(positions):
        cap = _position_limit(limits, symbol)
        if cap is None:
            continue
        quantity = abs(positions[symbol].quantity)
        reading = LimitReading("position_size", quantity, cap, quantity / cap, symbol)
        if worst is None or reading.utilization > worst.utilization:
            worst = reading
    if worst is not None:
        out["position_size"] = worst
    if limits.max_open_positions is not None and (positions or "active_positions" in financial):
        # The larger of the two views: one position per symbol in Redis, or the engine's count.
        count = max(float(len(positions)), financial.get("active_positions", 0.0))
        out["open_positions"] = LimitReading("open_positions", count, float(limits.max_open_positions),
                                             count / limits.max_open_positions)
    ratio, trades = financial.get("win_ratio"), financial.get("trades")
    if limits.min_win_ratio is not None and ratio is not None and trades is not None \
            and trades >= limits.min_trades:
        use = limits.min_win_ratio / ratio if ratio > 0 else math.inf
        out["win_ratio"] = LimitReading("win_ratio", ratio, limits.min_win_ratio, use)
    return out


class RiskMonitor:
    """Keeps the daily-loss baseline and writes RISK_LIMIT_BREACHED once per breach.

    `snapshot`, `desk` and `calendar` are callables so a reload or a new mirror cycle is
    seen on the next step. `writer` False (shards other than 0) computes readings only.
    """

    def __init__(self, client: RedisClient, snapshot: Callable[[], Snapshot],
                 desk: Callable[[], DeskConfig], calendar: Callable[[], TradingCalendar], *,
                 audit: AuditSink | None = None, metrics: DeskMetrics | None = None,
                 clock: Callable[[], float] = time.time, writer: bool = True) -> None:
        self.client = client
        self.snapshot = snapshot
        self.desk = desk
        self.calendar = calendar
        self.audit = audit
        self.metrics = metrics
        self.clock = clock
        self.writer = writer
        self.baseline: Baseline | None = None
        self.active: dict[str, dict[str, Any]] = {}  # limit → {since, value, threshold}
        self._baseline_dirty = False
        self._breaches_loaded = False
        self._breaches_dirty = False

    def readings(self) -> dict[str, LimitReading]:
        """The current readings (pure: the last snapshot and baseline)."""
        snap = self.snapshot()
        baseline = self.baseline
        if baseline is not None and baseline.session_open != self.calendar().last_open(self.clock()):
            baseline = None  # a new session began and the step has not captured its baseline yet
        return evaluate(self.desk().limits, snap.financial, snap.positions, baseline)

    async def step(self) -> dict[str, LimitReading]:
        """Bring the baseline up to date, then record breaches; returns the readings."""
        if self.writer:
            await self._update_baseline()
        readings = self.readings()
        if self.writer and self.audit is not None:
            await self._record_breaches(readings)
        return readings

    # -- the daily-loss baseline ---------------------------------------------------------

    async def _update_baseline(self) -> None:
        if self.desk().limits.daily_loss is None:
            return
        now = self.clock()
        opened = self.calendar().last_open(now)
        if opened is None:
            return
        current = self.baseline if self.baseline and self.baseline.session_open == opened else None
        if current is not None and not self._baseline_dirty:
            return
        try:
            stored = Baseline.from_dict(await self.client.get(BASELINE_KEY, count=False))
        except CacheError as exc:
            stored = None
            if current is not None:
                return  # keep ours; write it when Redis answers
            logger.warning("daily-loss baseline not readable from Redis ({}); capturing in memory", exc)
            self._baseline_dirty = True
        else:
            if stored is not None and stored.session_open == opened:
                self.baseline, self._baseline_dirty = stored, False  # the first capture wins
                return
        if current is None:
            pnl = self.snapshot().financial.get("pnl")
            if pnl is None:
                return  # nothing to measure from yet
            current = Baseline(opened, pnl, now)
            self.baseline = current
            logger.info("daily-loss baseline for the session opened {}: pnl {}",
                        iso_utc(opened), pnl)
        try:
            await self.client.set(BASELINE_KEY, current.as_dict(), ttl=0)
            self._baseline_dirty = False
        except CacheError:
            self._baseline_dirty = True

    # -- breaches ------------------------------------------------------------------------

    async def _load_breaches(self) -> None:
        try:
            stored = await self.client.get(BREACHES_KEY, count=False)
        except CacheError:
            return  # try again next step; until then nothing is recorded twice or lost
        if isinstance(stored, dict):
            self.active = {k: v for k, v in stored.items() if k in LIMITS and isinstance(v, dict)}
        self._breaches_loaded = True

    async def _record_breaches(self, readings: dict[str, LimitReading]) -> None:
        if not self._breaches_loaded:
            await self._load_breaches()
            if not self._breaches_loaded:
                return
        configured = {name for name in LIMITS if _configured(self.desk().limits, name)}
        for name in list(self.active):
            reading = readings.get(name)
            if name not in configured or (reading is not None and reading.utilization < REARM):
                del self.active[name]
                self._breaches_dirty = True
        for name, reading in readings.items():
            if reading.utilization >= 1.0 and name not in self.active:
                if await self._write_event(reading):
                    self.active[name] = {"since": iso_utc(self.clock()), "value": reading.value,
                                         "threshold": reading.threshold}
                    self._breaches_dirty = True
        if self._breaches_dirty:
            try:
                await self.client.set(BREACHES_KEY, self.active, ttl=0)
                self._breaches_dirty = False
            except CacheError:
                pass  # kept in memory; written on a later step

    async def _write_event(self, reading: LimitReading) -> bool:
        data: dict[str, Any] = {"limit": reading.limit, "value": reading.value,
                                "threshold": reading.threshold}
        if math.isfinite(reading.utilization):
            data["utilization"] = round(reading.utilization, 6)
        try:
            await self.audit.log_event("RISK_LIMIT_BREACHED", symbol=reading.symbol, data=data,
                                       actor=ACTOR)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retried on the next step, so the breach is recorded once
            logger.error("RISK_LIMIT_BREACHED for {} could not be recorded: {}", reading.limit, exc)
            if self.metrics is not None:
                self.metrics.audit_failures.labels("RISK_LIMIT_BREACHED").inc()
            return False
        logger.warning("risk limit {} breached: {} against {}", reading.limit, reading.value,
                       reading.threshold)
        if self.metrics is not None:
            self.metrics.breaches.labels(reading.limit).inc()
        return True

    async def run(self, interval: float) -> None:
        """Step every `interval` seconds until cancelled."""
        while True:
            try:
                await self.step()
            except CacheError:
                pass  # the backend logs outages; the next step retries
            except Exception:
                logger.exception("risk step failed")
            await asyncio.sleep(interval)


def _configured(limits: RiskLimits, name: str) -> bool:
    field = {"max_drawdown": limits.max_drawdown, "daily_loss": limits.daily_loss,
             "position_size": limits.max_position or None,
             "open_positions": limits.max_open_positions, "win_ratio": limits.min_win_ratio}[name]
    return field is not None
