"""Scheduler: each service probed every `interval`, jittered, never overlapping itself."""

from __future__ import annotations

import asyncio
import hashlib
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


class Scheduler:
    """One task per service; a tick that finds the last probe still running is skipped."""

    def __init__(self, checker: HealthChecker, lag_observer: Callable[[float], None] | None = None):
        self.checker = checker
        self.lag_observer = lag_observer
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False

    async def start(self) -> None:
        """Start a task for every service of the checker."""
        if self._running:
            return
        self._running = True
        for name in self.checker.states:
            self._spawn(name)
        logger.info("scheduler started with {} services", len(self._tasks))

    async def stop(self) -> None:
        """Cancel every service task and wait for them."""
        self._running = False
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def reschedule(self, added: list[str], removed: list[str], changed: list[str]) -> None:  # noqa: ARG002
        """Follow a registry change; unchanged services keep their schedule."""
        if not self._running:
            return
        for name in removed:
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()
        # A changed service keeps its task: the loop reads the new interval at its next tick.
        for name in added:
            self._spawn(name)

    def observe_lag(self, planned: float) -> None:
        """Record actual start minus planned start (loop clock) of a scheduled probe."""
        lag = max(0.0, asyncio.get_running_loop().time() - planned)
        if self.lag_observer is not None:
            self.lag_observer(lag)

    def _spawn(self, name: str) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._run(name), name=f"probe-schedule:{name}"
        )

    async def _run(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        checker = self.checker
        state = checker.states.get(name)
        if state is None:
            return
        planned = loop.time() + min(state.config.interval, FIRST_PROBE_WITHIN) * spread(name)
        while True:
            delay = planned - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            state = checker.states.get(name)
            if state is None:
                return
            if checker.is_running(name):
                state.skipped += 1
            else:
                checker.start_probe(name, planned=planned)
            interval = state.config.interval
            planned += interval
            now = loop.time()
            if planned < now - interval:
                # Far behind (a stalled loop, a suspended process): realign, don't burst.
                planned = now
