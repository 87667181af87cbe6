"""Scheduler: each service probed every `interval`, spread over time, never overlapping itself."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
from collections.abc import Callable, Iterable

from loguru import logger

from ..units import plural

FIRST_PROBE_WITHIN = 10.0  # seconds: a service's first probe starts within min(interval, this)
# Starts due within this much are taken together. uvloop's timers and clock have millisecond
# resolution: a timer can fire when its loop.time() is still a fraction of a millisecond
# short, and without slack it would be re-armed for the same instant again and again.
TIMER_SLACK = 0.001


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
    """One heap of planned starts and one loop timer for the earliest (no task or timer per
    service: a tick costs a heap pop and push); a tick that finds the last probe still
    running is skipped and counted."""

    def __init__(
        self,
        start_probe: Callable[[str, float], object],
        is_running: Callable[[str], bool],
        interval: Callable[[str], float | None],
        skipped: Callable[[str], None],
    ) -> None:
        """`start_probe(name, planned)` starts a probe, `is_running(name)` says one is in
        flight, `interval(name)` is the service's interval (None: no longer registered),
        and `skipped(name)` counts a tick that found the last probe still running."""
        self.start_probe = start_probe
        self.is_running = is_running
        self.interval = interval
        self.skipped = skipped
        self._heap: list[tuple[float, int, str]] = []  # (planned, token, name)
        self._live: dict[str, tuple[float, int]] = {}  # name → (planned, token) of its entry
        self._tokens = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False

    async def start(self, names: Iterable[str]) -> None:
        """Plan the first start of every service in `names`."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        for name in names:
            self._plan_first(name)
        logger.info("scheduler started with {}", plural(len(self._live), "service"))

    async def stop(self) -> None:
        """Forget every plan; probes in flight belong to the checker, which cancels them."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._heap.clear()
        self._live.clear()

    def reschedule(self, added: list[str], removed: list[str], changed: list[str]) -> None:
        """Follow a registry change; unchanged services keep their schedule."""
        if not self._running or self._loop is None:
            return
        for name in removed:
            self._live.pop(name, None)  # its heap entry is dropped when it comes up
        now = self._loop.time()
        for name in changed:
            # A changed service keeps its plan, and its next tick reads the new interval;
            # but a plan further away than the new, shorter interval allows is brought in
            # (spread as a first start is), so the staleness alert does not fire meanwhile.
            live, interval = self._live.get(name), self.interval(name)
            if live is None or interval is None:
                continue
            sooner = now + interval * spread(name)
            if sooner < live[0]:
                self._plan(name, sooner)
        for name in added:
            self._plan_first(name)
        self._arm()

    @property
    def services(self) -> int:
        """How many services have a start planned."""
        return len(self._live)

    def planned(self, name: str) -> float | None:
        """Loop time of the next planned start of `name` (None: not scheduled)."""
        live = self._live.get(name)
        return live[0] if live is not None else None

    def _plan_first(self, name: str) -> None:
        interval = self.interval(name)
        if interval is None or self._loop is None:
            return
        delay = min(interval, FIRST_PROBE_WITHIN) * spread(name)
        self._plan(name, self._loop.time() + delay)
        self._arm()

    def _plan(self, name: str, planned: float) -> None:
        token = next(self._tokens)
        self._live[name] = (planned, token)  # replaces any older entry of the same service
        heapq.heappush(self._heap, (planned, token, name))

    def _arm(self) -> None:
        """Keep one timer, at the earliest planned start."""
        if not self._heap or self._loop is None:
            return
        earliest = self._heap[0][0]
        if earliest >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(earliest, self._run_due)
        self._timer_at = earliest

    def _run_due(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if not self._running:
            return
        assert self._loop is not None
        now = self._loop.time()
        heap, live = self._heap, self._live
        due = []
        horizon = now + TIMER_SLACK
        while heap and heap[0][0] <= horizon:
            due.append(heapq.heappop(heap))
        try:
            for planned, token, name in due:
                if live.get(name, (0.0, -1))[1] != token:
                    continue  # removed by a reload, or planned again since
                self._tick(name, planned, now)
        finally:
            self._arm()

    def _tick(self, name: str, planned: float, now: float) -> None:
        interval = self.interval(name)
        if interval is None:  # gone without a reschedule: its plan ends here
            self._live.pop(name, None)
            return
        # Plan the next start first: a failure to start this probe must not end the schedule.
        self._plan(name, next_start(planned, interval, now))
        try:
            if self.is_running(name):
                self.skipped(name)
            else:
                self.start_probe(name, planned)
        except Exception:
            logger.exception("scheduled probe of {} could not start", name)
