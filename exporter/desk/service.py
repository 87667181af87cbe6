"""The desk component the sidecar runs: halt switch, risk monitor, reconciler, their loops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from loguru import logger

from ..cache.client import RedisClient
from ..cache.mirror import Mirror
from ..config.model import DeskConfig
from .calendar import TradingCalendar
from .halt import AuditSink, HaltSwitch
from .metrics import DeskMetrics
from .reconcile import EventSource, Reconciler
from .risk import RiskMonitor


class Desk:
    """Everything desk-aware one sidecar runs; start() and close() bracket its loops.

    `config` is read on every use, so a reload of services.yaml takes effect at once.
    `writer` False (every shard but 0) keeps Redis and the audit trail untouched by the
    risk monitor and skips reconciliation, so N sidecars write each event once.
    """

    def __init__(self, client: RedisClient, mirror: Mirror, config: Callable[[], DeskConfig], *,
                 metrics: DeskMetrics, audit: AuditSink | None = None,
                 audit_store: EventSource | None = None, audit_pending: Callable[[], int] = lambda: 0,
                 symbols: Callable[[], Iterable[str]] | None = None, writer: bool = True,
                 max_future_skew: float | None = None, interval: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.mirror = mirror
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.max_future_skew = max_future_skew
        self._calendar: tuple[DeskConfig, TradingCalendar] | None = None
        self.halt = HaltSwitch(client, audit=audit, clock=clock)
        self.risk = RiskMonitor(client, lambda: mirror.snapshot, config, self.calendar, audit=audit,
                                metrics=metrics, clock=clock, writer=writer)
        self.reconciler = None
        if audit_store is not None and writer:
            self.reconciler = Reconciler(
                audit_store, client, symbols or (lambda: mirror.mirrored_symbols), config,
                pending=audit_pending, metrics=metrics, clock=clock)
        self._tasks: list[asyncio.Task] = []

    def calendar(self) -> TradingCalendar:
        """The calendar of the current `desk:` section (rebuilt after a reload changes it)."""
        desk = self.config()
        cached = self._calendar
        if cached is None or (cached[0] is not desk and cached[0] != desk):
            cached = (desk, TradingCalendar.from_config(desk))
            self._calendar = cached
        return cached[1]

    async def start(self) -> None:
        """Start the halt, risk and reconciliation loops."""
        loops: list[tuple[str, Any]] = [("desk-halt", self.halt.run(self.interval)),
                                        ("desk-risk", self.risk.run(self.interval))]
        if self.reconciler is not None:
            loops.append(("desk-reconcile", self.reconciler.run()))
        self._tasks = [asyncio.create_task(coro, name=name) for name, coro in loops]

    async def close(self) -> None:
        """Cancel the loops and wait for them."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                logger.opt(exception=task.exception()).error("{} ended with an error", task.get_name())
        self._tasks = []
