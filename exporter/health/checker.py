"""HealthChecker: runs probes, keeps each service's state, tells listeners what changed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from loguru import logger

from ..config.model import ServiceConfig
from .probes import run_probe
from .probes.base import ProbeContext
from .probes.push import PushBoard, report_result
from .registry import ServiceRegistry
from .result import ProbeResult
from .scheduler import Scheduler
from .shard import in_shard
from .state import ServiceState, iso_utc, overall_status, summary


@dataclass(frozen=True)
class HealthEvent:
    """One completed probe, as listeners see it."""

    service: ServiceConfig
    health: dict[str, Any]
    old_status: str
    new_status: str
    result: ProbeResult

    @property
    def changed(self) -> bool:
        """A change worth a record: between healthy, degraded and unhealthy, or the first
        trouble seen of a new service (unknown to degraded or unhealthy). A new service
        found healthy, and a service going back to unknown, are not changes."""
        if self.old_status == self.new_status or self.new_status == "unknown":
            return False
        return self.old_status != "unknown" or self.new_status != "healthy"


# What decides how a service is judged, not what is probed: a change of these keeps the
# state; a change of anything else is another target, judged afresh.
_JUDGEMENT_FIELDS = ("interval", "timeout", "degraded_latency", "failure_threshold",
                     "success_threshold", "critical", "labels", "during", "line")


def _probes_another_target(old: ServiceConfig, new: ServiceConfig) -> bool:
    """True when `new` probes something else than `old` (URL, address, type, query ...)."""
    return replace(old, **{name: getattr(new, name) for name in _JUDGEMENT_FIELDS}) != new
class UnknownService(LookupError):
    """No service of that name is registered (or it was removed by a reload meanwhile)."""


class NotInShard(LookupError):
    """The service exists but belongs to another shard."""


class NotPush(LookupError):
    """The service exists but is not of type push: it cannot report in."""


class HealthChecker:
    """Probes registered services and keeps their thresholded state.

    `registry` None gives an empty registry of its own. `shard` is (index, count): only
    services hashing to `index` are probed and answered for.
    """

    def __init__(
        self,
        registry: ServiceRegistry | None = None,
        *,
        shard: tuple[int, int] = (0, 1),
        concurrency: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else ServiceRegistry()
        self.shard = shard
        self.clock = clock
        self.states: dict[str, ServiceState] = {}
        self._concurrency = concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[HealthEvent], None]] = []
        self._synced_version = -1
        self.scheduler: Scheduler | None = None  # set by start_monitoring
        self._lag_observer: Callable[[float], None] | None = None
        self.push = PushBoard(clock)
        self.sync()

    # -- registry -------------------------------------------------------------------

    def register_service(self, name: str, **kwargs: Any) -> ServiceConfig:
        """Register a service (same arguments as ServiceRegistry.register)."""
        svc = self.registry.register(name, **kwargs)
        self.sync()
        return svc

    def sync(self) -> tuple[list[str], list[str], list[str]]:
        """Reconcile states with the registry: returns (added, removed, changed) names.

        Unchanged services keep state and counters. A changed one keeps its state when only
        how it is judged changed (interval, thresholds, labels ...); one that now probes
        another target (URL, address, type, query ...) is `unknown` again, counters kept.
        Removed ones lose their state (and so their series).
        """
        if self._synced_version == self.registry.version:
            return [], [], []
        self._synced_version = self.registry.version
        wanted = {
            svc.name: svc for svc in self.registry.list() if in_shard(svc.name, *self.shard)
        }
        added, removed, changed = [], [], []
        for name in list(self.states):
            if name not in wanted:
                del self.states[name]
                self.push.forget(name)
                removed.append(name)
        for name, svc in wanted.items():
            state = self.states.get(name)
            if state is None:
                self.states[name] = ServiceState(svc)
                added.append(name)
            elif state.config != svc:
                if _probes_another_target(state.config, svc):
                    state.retarget(svc)
                else:
                    state.config = svc
                    state.health = None
                changed.append(name)
        if self.scheduler is not None:
            self.scheduler.reschedule(added, removed, changed)
        return added, removed, changed

    def add_listener(self, fn: Callable[[HealthEvent], None]) -> None:
        """Call `fn(event)` after every completed probe; it must not block."""
        self._listeners.append(fn)

    def state_of(self, name: str) -> ServiceState:
        """The state of `name`; UnknownService when unknown, NotInShard for another shard's."""
        return self._state(name)

    def _state(self, name: str) -> ServiceState:
        self.sync()
        state = self.states.get(name)
        if state is not None:
            return state
        if self.registry.get(name) is not None:
            raise NotInShard(name)
        raise UnknownService(name)

    # -- probing --------------------------------------------------------------------

    def _context(self, timeout: float, trace: Callable[[str], None] | None = None,
                 name: str | None = None) -> ProbeContext:
        state = self.states.get(name) if name is not None else None
        return ProbeContext(timeout=timeout,
                            allowed_targets=self.registry.allowed_targets, trace=trace,
                            push=self.push,
                            last_result=state.last_result if state is not None else None)

    async def probe_once(self, service: ServiceConfig, timeout: float | None = None,
                         trace: Callable[[str], None] | None = None) -> ProbeResult:
        """Run one probe of `service` without touching any state (the /probe route);
        `trace` receives the probe's own log lines."""
        limit = service.timeout if timeout is None else min(timeout, service.timeout)
        return await run_probe(service, self._context(limit, trace, service.name))

    def report_push(self, name: str, status: str, latency_ms: float | None = None,
                    message: str | None = None) -> dict[str, Any]:
        """Record a push service's report as its probe result → its health format.

        UnknownService for an unknown service, NotInShard for another shard's, NotPush for a
        service that is not of type push.
        """
        state = self._state(name)
        if state.config.type != "push":
            raise NotPush(name)
        self.push.report(name)
        return self._record(state, report_result(status, latency_ms, message))

    def is_running(self, name: str) -> bool:
        """True while a recorded probe of `name` is in flight."""
        return name in self._inflight

    async def check_service(self, name: str) -> dict[str, Any]:
        """Probe `name` now (joining a probe already in flight) → its health format.

        Raises UnknownService for an unknown service, NotInShard for another shard's.
        """
        self._state(name)
        running = self._inflight.get(name)
        if running is None:
            running = self.start_probe(name)
        return await asyncio.shield(running)

    def start_probe(self, name: str, planned: float | None = None) -> asyncio.Future[dict[str, Any]]:
        """Start a recorded probe of `name` in the background; returns its future.

        `planned` is the scheduler's planned start (loop clock), for the lag histogram.
        """
        future = asyncio.ensure_future(self._probe_and_record(name, planned))
        self._inflight[name] = future
        future.add_done_callback(self._probe_done)
        return future

    def _probe_done(self, future: asyncio.Future) -> None:
        for name, running in list(self._inflight.items()):
            if running is future:
                del self._inflight[name]
        if not future.cancelled():
            future.exception()  # retrieved: a scheduled probe of a removed service has no reader

    async def _probe_and_record(self, name: str, planned: float | None = None) -> dict[str, Any]:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        async with self._semaphore:
            state = self.states.get(name)
            if state is None:  # removed by a reload while waiting
                raise UnknownService(name)
            if planned is not None and self._lag_observer is not None:
                # actual start minus planned start (loop clock) of a scheduled probe
                self._lag_observer(max(0.0, asyncio.get_running_loop().time() - planned))
            svc = state.config
            if svc.type == "push":
                # A push service's results are its reports; a tick only judges silence.
                silent = self.push.silent_result(svc)
                if silent is None:
                    # The last report stands; the check is fresh (UsdcopProbeStale holds).
                    state.checked(self.clock())
                    return state.health_format()
                return self._record(state, silent)
            result = await run_probe(svc, self._context(svc.timeout))
        if self.states.get(name) is not state:  # removed (or removed and re-added) meanwhile
            raise UnknownService(name)
        return self._record(state, result)

    def record(self, name: str, result: ProbeResult) -> dict[str, Any]:
        """Apply a probe result to the state of `name`, log a change, tell listeners."""
        state = self.states.get(name)
        if state is None:
            raise UnknownService(name)
        return self._record(state, result)

    def _record(self, state: ServiceState, result: ProbeResult) -> dict[str, Any]:
        name = state.config.name
        old, new = state.apply(result, self.clock())
        health = state.health_format()
        event = HealthEvent(state.config, health, old, new, result)
        if old != new:
            log = logger.bind(service=name, old=old, new=new, reason=result.reason)
            if new == "unhealthy":
                log.warning("service {} is now {} ({})", name, new, result.reason or "reported")
            else:
                log.info("service {} is now {}", name, new)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop probing
                logger.exception("health listener {} failed", getattr(listener, "__name__", listener))
        return health

    async def check_all_services(self) -> dict[str, Any]:
        """Probe every service of this shard now → the overall answer of GET /api/health/services."""
        self.sync()
        names = list(self.states)
        await asyncio.gather(*(self.check_service(n) for n in names), return_exceptions=True)
        return self.overview()

    def overview(self) -> dict[str, Any]:
        """The overall answer from the current states, without probing."""
        self.sync()
        states = list(self.states.values())
        return {
            "overall_status": overall_status(states),
            "services": [s.health_format() for s in states],
            "summary": summary(states),
            "timestamp": iso_utc(self.clock()),
            "shard": f"{self.shard[0]}/{self.shard[1]}",
        }

    # -- monitoring -----------------------------------------------------------------

    async def start_monitoring(self, lag_observer: Callable[[float], None] | None = None) -> None:
        """Start the scheduler (idempotent)."""
        self.sync()
        if self.scheduler is None:
            self._lag_observer = lag_observer
            self.scheduler = Scheduler(self.start_probe, self.is_running, self._interval,
                                       self._skipped)
        await self.scheduler.start(self.states)

    def _interval(self, name: str) -> float | None:
        state = self.states.get(name)
        return state.config.interval if state is not None else None

    def _skipped(self, name: str) -> None:
        state = self.states.get(name)
        if state is not None:
            state.skip()

    async def stop_monitoring(self) -> None:
        """Stop the scheduler and cancel (and await) every probe in flight."""
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        pending = list(self._inflight.values())
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
