"""Scripted desk incidents for the demo: a trading halt, and a position in Redis that the
audit trail never recorded (a position mismatch that also breaches the risk limits)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from loguru import logger

from ..cache.errors import CacheError
from ..cache.trading_metrics import MetricsCache
from .engine import DemoEngine

ACTOR = "demo-risk-desk"
PHANTOM_SYMBOL = "USDBRL"
PHANTOM_QUANTITY = 250_000.0  # above the demo's max_position: a breach as well as a mismatch
HALT_PATH = "/api/trading/halt"
# When each step runs, as a fraction of the cycle (15 minutes by default): the halt lasts
# long enough for UsdcopTradingHalted (1m) to fire, the phantom position for
# UsdcopPositionMismatch (5m) and UsdcopRiskLimitBreached (1m).
SCHEDULE = ((1 / 15, "halt"), (4 / 15, "resume"), (5 / 15, "open_phantom"),
            (12 / 15, "clear_phantom"))
DEFAULT_CYCLE = 900.0


async def open_phantom_position(metrics: MetricsCache) -> dict[str, Any]:
    """Write an active position the audit trail never saw, as a manual fix in Redis would:
    the desk's reconciliation reports a mismatch, its risk monitor a position-size breach."""
    price = 5.05
    return await metrics.set_position({
        "position_id": "demo-manual-fix", "symbol": PHANTOM_SYMBOL, "side": "LONG",
        "quantity": PHANTOM_QUANTITY, "entry_price": price,
        "entry_time": datetime.now(UTC).isoformat(), "current_price": price,
        "unrealized_pnl": 0.0})


class Incidents:
    """Runs SCHEDULE every `cycle` seconds against the sidecar at `sidecar_url` (halt and
    resume through its API) and the engine's cache (the phantom position)."""

    def __init__(self, engine: DemoEngine, sidecar_url: str, token: str | None = None,
                 cycle: float = DEFAULT_CYCLE, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if not cycle > 0:
            raise ValueError(f"cycle must be above 0 seconds, got {cycle!r}")
        self.engine = engine
        self.base = sidecar_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.cycle = cycle
        self.clock = clock
        self.started = clock()
        self.done = 0  # steps run so far, over all cycles
        self.halted_by_us = False
        self.phantom_open = False
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.request(method, self.base + HALT_PATH, json=body,
                                             headers=self.headers) as resp:
                answer = await resp.json(content_type=None)
                if resp.status >= 400:
                    logger.warning("demo incidents: {} {} answered {}: {}", method, HALT_PATH,
                                   resp.status, answer)
                    return None
                return answer
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("demo incidents: {} {} failed: {}", method, HALT_PATH, exc)
            return None

    async def halt(self) -> bool:
        """Halt trading through the desk's kill switch (reason risk_limit)."""
        answer = await self._call("POST", {"actor": ACTOR, "reason": "risk_limit",
                                           "note": "demo: drawdown review"})
        self.halted_by_us = self.halted_by_us or answer is not None
        return answer is not None

    async def resume(self) -> bool:
        """Lift the halt (recorded as TRADING_RESUMED before the key goes)."""
        answer = await self._call("DELETE", {"actor": ACTOR, "note": "demo: review done"})
        if answer is not None:
            self.halted_by_us = False
        return answer is not None

    async def open_phantom(self) -> dict[str, Any]:
        """Write the phantom position (see open_phantom_position)."""
        stored = await open_phantom_position(self.engine.parts.metrics)
        self.phantom_open = True
        return stored

    async def clear_phantom(self) -> bool:
        """Remove the phantom position again."""
        self.phantom_open = False
        return await self.engine.parts.metrics.close_position(PHANTOM_SYMBOL)

    async def step(self) -> list[str]:
        """Run the steps that have come due; returns their names."""
        elapsed = self.clock() - self.started
        ran = []
        while True:
            cycle, index = divmod(self.done, len(SCHEDULE))
            at, name = SCHEDULE[index]
            if elapsed < (cycle + at) * self.cycle:
                return ran
            logger.info("demo incidents: {}", name.replace("_", " "))
            await getattr(self, name)()
            self.done += 1
            ran.append(name)

    async def close(self, undo: bool = True) -> None:
        """Undo what is still in force (halt, phantom position) unless `undo` is False, and
        close the HTTP client."""
        try:
            if not undo:
                return
            if self.phantom_open:
                try:
                    await self.clear_phantom()
                except CacheError as exc:
                    logger.warning("demo incidents: phantom position left in Redis: {}", exc)
            if self.halted_by_us:
                await self.resume()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def __aenter__(self) -> Incidents:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
