"""A simulated trading engine: writes signals, positions, financial and custom metrics,
latency records, timed operations and audit events through the library, as a real engine would."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from ..audit.errors import AuditError
from ..audit.logger import AuditLogger
from ..cache.errors import CacheError
from ..cache.signals import SignalCache
from ..cache.trading_metrics import MetricsCache
from ..desk.halt import HALT_KEY
from ..latency.monitor import LatencyMonitor
from ..latency.performance import PerformanceLogger

DEFAULT_SYMBOLS = ("USDCOP", "EURCOP")
START_PRICES = {"USDCOP": 4100.0, "EURCOP": 4450.0}
CAPITAL = 1_000_000_000.0  # account currency (COP)
QUANTITY = 100_000.0  # units of the base currency per position
MODEL_VERSION = "demo-1.0"
ACTOR = "trading-engine"


@dataclass
class EngineParts:
    """What the engine writes through: the caches, the latency kit and (optionally) the audit logger."""

    signals: SignalCache
    metrics: MetricsCache
    monitor: LatencyMonitor
    performance: PerformanceLogger
    audit: AuditLogger | None = None


@dataclass
class _Book:
    """The engine's own accounting, from which the financial snapshot is built."""

    realized: list[float] = field(default_factory=list)
    peak_equity: float = CAPITAL
    max_drawdown: float = 0.0
    trades: int = 0


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


class DemoEngine:
    """Trades a random walk per symbol: one `tick()` is one decision round for every symbol."""

    def __init__(self, parts: EngineParts, *, symbols: tuple[str, ...] = DEFAULT_SYMBOLS,
                 seed: int | None = None, clock=time.time) -> None:
        self.parts = parts
        self.symbols = tuple(symbols)
        self.rng = random.Random(seed)
        self.clock = clock
        self.prices = {s: START_PRICES.get(s, 1000.0) for s in self.symbols}
        self.momentum = dict.fromkeys(self.symbols, 0.0)
        self.positions: dict[str, dict[str, Any]] = {}
        self.book = _Book()
        self.ticks = 0
        self.audit_failures = 0
        self.halted = False  # trading:halted was set at the last round's start

    # -- one round -------------------------------------------------------------------

    async def tick(self) -> dict[str, Any]:
        """Move prices, emit a signal per symbol, trade on it (not while trading is halted),
        publish the state; returns a summary."""
        self.ticks += 1
        await self._check_halt()
        emitted = []
        for symbol in self.symbols:
            signal = await self.parts.performance.measure(
                "generate_signal", lambda s=symbol: self._generate_signal(s))
            await self.parts.signals.record(signal)
            await self._audit("log_signal_generated", {
                "signal_id": signal["signal_id"], "symbol": symbol, "action": signal["action"],
                "confidence": signal["confidence"], "price": signal["price"],
                "model_version": MODEL_VERSION})
            if not self.halted:
                await self._act(symbol, signal)
            elif symbol in self.positions:
                await self._mark(symbol)  # halted: no orders, positions still marked
            emitted.append(signal)
        await self.parts.performance.measure("publish_metrics", self._publish)
        return {"tick": self.ticks, "signals": emitted, "positions": dict(self.positions)}

    async def _check_halt(self) -> None:
        """The desk's kill switch: while `trading:halted` exists, send no orders."""
        halted = await self.parts.signals.client.exists(HALT_KEY)
        if halted != self.halted:
            logger.info("demo engine: trading {}", "halted, sending no orders" if halted
                        else "resumed")
        self.halted = halted

    async def _generate_signal(self, symbol: str) -> dict[str, Any]:
        started = time.monotonic()
        # Inference takes a few milliseconds; the quote comes from "market data".
        await asyncio.sleep(self.rng.uniform(0.002, 0.015))
        quote_ms = self.rng.lognormvariate(math.log(8.0), 0.5)
        self.parts.monitor.record_latency("market-data", "fetch_quote", quote_ms,
                                          success=self.rng.random() > 0.01)
        price = self.prices[symbol] * math.exp(self.rng.gauss(0.0, 0.0008))
        self.momentum[symbol] = 0.7 * self.momentum[symbol] + (price / self.prices[symbol] - 1)
        self.prices[symbol] = price
        strength = self.momentum[symbol] / 0.0008
        action = "BUY" if strength > 0.5 else "SELL" if strength < -0.5 else "HOLD"
        confidence = min(0.99, 0.5 + abs(strength) / 6)
        inference_ms = self.rng.lognormvariate(math.log(20.0), 0.4)
        self.parts.monitor.record_latency("ml-analytics", "predict", inference_ms)
        return {
            "signal_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "timestamp": _iso(self.clock()),
            "symbol": symbol,
            "action": action,
            "confidence": round(confidence, 4),
            "price": round(price, 2),
            "model_version": MODEL_VERSION,
            "execution_latency_ms": round((time.monotonic() - started) * 1000.0, 3),
            "features": {"momentum": round(self.momentum[symbol], 6)},
        }

    async def _act(self, symbol: str, signal: dict[str, Any]) -> None:
        position = self.positions.get(symbol)
        action = signal["action"]
        if position is None and action != "HOLD":
            await self._open(symbol, "LONG" if action == "BUY" else "SHORT", signal)
        elif position is not None and (position["side"], action) in (("LONG", "SELL"),
                                                                      ("SHORT", "BUY")):
            await self._close(symbol, signal)
        elif position is not None:
            await self._mark(symbol)

    async def _order(self, symbol: str, side: str, signal: dict[str, Any]) -> dict | None:
        """Send an order to the simulated broker; None when it is rejected (about 1 in 20)."""
        latency_ms = self.rng.lognormvariate(math.log(45.0), 0.6)
        accepted = self.rng.random() > 0.05
        self.parts.monitor.record_latency("broker-gateway", "place_order", latency_ms,
                                          success=accepted)
        if not accepted:
            return None
        trade = {"trade_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                 "signal_id": signal["signal_id"], "symbol": symbol, "side": side,
                 "price": signal["price"], "quantity": QUANTITY,
                 "executed_at": _iso(self.clock())}
        self.book.trades += 1
        await self._audit("log_trade_executed", trade)
        return trade

    async def _open(self, symbol: str, side: str, signal: dict[str, Any]) -> None:
        trade = await self._order(symbol, "BUY" if side == "LONG" else "SELL", signal)
        if trade is None:
            return
        position = {"position_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                    "symbol": symbol, "side": side, "quantity": QUANTITY,
                    "entry_price": trade["price"], "entry_time": trade["executed_at"],
                    "current_price": trade["price"], "unrealized_pnl": 0.0}
        await self.parts.metrics.set_position(position)
        self.positions[symbol] = position
        await self._audit("log_position_opened", {
            k: position[k] for k in ("position_id", "symbol", "entry_price", "quantity",
                                     "entry_time", "side")})

    async def _close(self, symbol: str, signal: dict[str, Any]) -> None:
        position = self.positions[symbol]
        trade = await self._order(symbol, "SELL" if position["side"] == "LONG" else "BUY", signal)
        if trade is None:
            return
        pnl = self._pnl(position, trade["price"])
        self.book.realized.append(pnl)
        await self.parts.metrics.close_position(symbol)
        del self.positions[symbol]
        await self._audit("log_position_closed", {
            "position_id": position["position_id"], "symbol": symbol,
            "exit_price": trade["price"], "quantity": position["quantity"],
            "exit_time": trade["executed_at"], "realized_pnl": round(pnl, 2)})

    async def _mark(self, symbol: str) -> None:
        position = self.positions[symbol]
        price = round(self.prices[symbol], 2)
        position.update(current_price=price, unrealized_pnl=round(self._pnl(position, price), 2))
        # RISK_LIMIT_BREACHED is the sidecar's to record (its desk risk monitor): the
        # library refuses it from engines.
        await self.parts.metrics.set_position(position)

    @staticmethod
    def _pnl(position: dict[str, Any], price: float) -> float:
        sign = 1.0 if position["side"] == "LONG" else -1.0
        return sign * (price - position["entry_price"]) * position["quantity"]

    # -- state the dashboards read ---------------------------------------------------

    def financial_snapshot(self) -> dict[str, Any]:
        """The financial metrics from the engine's book."""
        realized = self.book.realized
        unrealized = sum(p["unrealized_pnl"] for p in self.positions.values())
        total = sum(realized) + unrealized
        equity = CAPITAL + total
        self.book.peak_equity = max(self.book.peak_equity, equity)
        drawdown = equity / self.book.peak_equity - 1.0
        self.book.max_drawdown = min(self.book.max_drawdown, drawdown)
        returns = [r / CAPITAL for r in realized]
        sharpe = 0.0
        if len(returns) >= 2 and statistics.pstdev(returns) > 0:
            sharpe = statistics.fmean(returns) / statistics.pstdev(returns) * math.sqrt(252)
        return {
            "timestamp": _iso(self.clock()),
            "total_pnl": round(total, 2),
            "win_rate": round(sum(r > 0 for r in realized) / len(realized), 4) if realized else 0.0,
            "sharpe_ratio": round(sharpe, 4),
            "max_drawdown": round(self.book.max_drawdown, 6),
            "total_trades": self.book.trades,
            "active_positions": len(self.positions),
            "portfolio_value": round(equity, 2),
        }

    async def _publish(self) -> None:
        metrics = self.parts.metrics
        await metrics.set_financial_metrics(self.financial_snapshot())
        await metrics.set_custom_metric("engine_ticks", self.ticks)
        spread = round(abs(self.rng.gauss(3.0, 0.8)), 3)
        await metrics.set_custom_metric("fx_spread_bps", {"value": spread,
                                                          "timestamp": _iso(self.clock())})
        await metrics.set_custom_metric("model_drift_score",
                                        round(abs(self.rng.gauss(0.1, 0.03)), 4))

    async def _audit(self, helper: str, record: dict[str, Any]) -> None:
        """Write an audit event; an unavailable audit store is logged, never fatal."""
        if self.parts.audit is None:
            return
        try:
            await getattr(self.parts.audit, helper)(record, actor=ACTOR)
        except AuditError as exc:
            self.audit_failures += 1
            logger.warning("demo engine: audit event not written: {}", exc)

    # -- the loop --------------------------------------------------------------------

    async def run(self, interval: float, stop: asyncio.Event,
                  after_tick: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Tick every `interval` seconds until `stop` is set; a failed round is logged and
        the next one tried. `after_tick` is awaited after every round that went through."""
        while not stop.is_set():
            try:
                await self.tick()
                if after_tick is not None:
                    await after_tick()
            except (CacheError, OSError, ValueError) as exc:
                logger.warning("demo engine: tick {} failed: {}", self.ticks, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
