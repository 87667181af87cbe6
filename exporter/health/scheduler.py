"""Scheduler: each service probed every `interval`, spread over time, never overlapping itself."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from .checker import HealthChecker

FIRST_PROBE_WITHIN = 10.0  # seconds: a service's first probe starts within min(interval, this)


def spread(name: str) -> float:
    """A stable fraction in [0, 1) per service name, so first probes are spread, not bunched."""
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def next_start(planned: float, interval: float, now: float) -> float:
    """The start after `planned`: one interval on, or, when more than an interval behind
    (a stalled loop, a suspended process), the first start ahead on the same phase, so
    that services spread over the interval stay spread instead of all firing at once."""
    following = planned + interval
    if following < now - interval:
        following += math.ceil((now - following) / interval) * interval
    return following


class Scheduler:
    """One loop timer per service (no task per service); a tick that finds the last
    probe still running is skipped and counted."""

    def __init__(self, checker: HealthChecker, lag_observer: Callable[[float], None] | None = None):
        self.checker = checker
        self.lag_observer = lag_observer
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False

    async def start(self) -> None:
        """Arm a timer for every service of the checker."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        for name in self.checker.states:
            self._arm_first(name)
        logger.info("scheduler started with {} services", len(self._timers))

    async def stop(self) -> None:
        """Cancel every timer; probes in flight belong to the checker, which cancels them."""
        self._running = False
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def reschedule(self, added: list[str], removed: list[str], changed: list[str]) -> None:  # noqa: ARG002
        """Follow a registry change; unchanged services keep their schedule."""
        if not self._running:
            return
        for name in removed:
            handle = self._timers.pop(name, None)
            if handle is not None:
                handle.cancel()
        # A changed service keeps its timer: the next tick reads the new interval.
        for name in added:
            self._arm_first(name)

    def observe_lag(self, planned: float) -> None:
        """Record actual start minus planned start (loop clock) of a scheduled probe."""
        lag = max(0.0, asyncio.get_running_loop().time() - planned)
        if self.lag_observer is not None:
            self.lag_observer(lag)

    @property
    def services(self) -> int:
        """How many services have a timer armed."""
        return len(self._timers)

    def planned(self, name: str) -> float | None:
        """Loop time of the next planned start of `name` (None: not scheduled)."""
        handle = self._timers.get(name)
        return handle.when() if handle is not None else None

    def _arm_first(self, name: str) -> None:
        state = self.checker.states.get(name)
        if state is None or self._loop is None:
            return
        old = self._timers.get(name)
        if old is not None:  # never two timers for one service
            old.cancel()
        delay = min(state.config.interval, FIRST_PROBE_WITHIN) * spread(name)
        self._arm(name, self._loop.time() + delay)

    def _arm(self, name: str, planned: float) -> None:
        assert self._loop is not None
        self._timers[name] = self._loop.call_at(planned, self._tick, name, planned)

    def _tick(self, name: str, planned: float) -> None:
        checker = self.checker
        state = checker.states.get(name)
        if state is None or not self._running:  # removed by a reload: its timer ends here
            self._timers.pop(name, None)
            return
        assert self._loop is not None
        # Re-arm first: a failure to start this probe must not end the service's schedule.
        self._arm(name, next_start(planned, state.config.interval, self._loop.time()))
        try:
            if checker.is_running(name):
                state.skipped += 1
            else:
                checker.start_probe(name, planned=planned)
        except Exception:
            logger.exception("scheduled probe of {} could not start", name)
