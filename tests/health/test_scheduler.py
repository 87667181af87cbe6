"""The scheduler's timers: one per service, spread first starts, phase kept after a stall,
reloads followed, a failed start never ends a schedule."""

from __future__ import annotations

import asyncio

from exporter.config.model import Config, ServiceConfig
from exporter.health.checker import HealthChecker
from exporter.health.registry import ServiceRegistry
from exporter.health.scheduler import FIRST_PROBE_WITHIN, Scheduler, next_start, spread


async def ok():
    return {"success": True, "latency_ms": 1}


def py(name: str, **kw) -> ServiceConfig:
    return ServiceConfig(name=name, type="python", check_fn=ok, **kw)


async def wait_for(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_next_start_keeps_the_phase():
    assert next_start(10.0, 2.0, 10.5) == 12.0  # on time
    assert next_start(10.0, 2.0, 13.5) == 12.0  # late by less than an interval: start now
    # far behind: the first start ahead on the same phase, not a burst of missed ticks
    assert next_start(10.0, 2.0, 30.3) == 32.0
    assert next_start(0.0, 0.5, 100.01) == 100.5


def test_spread_is_stable_and_spreads():
    assert spread("trading-api") == spread("trading-api")
    fractions = [spread(f"svc-{i}") for i in range(1000)]
    assert all(0 <= f < 1 for f in fractions)
    tenths = [sum(1 for f in fractions if k / 10 <= f < (k + 1) / 10) for k in range(10)]
    assert max(tenths) < 150 and min(tenths) > 50  # ~100 each


async def test_one_timer_per_service_first_start_within_bound_and_reload():
    services = [py(f"s{i}", interval=600.0) for i in range(50)] + [py("quick", interval=0.5)]
    checker = HealthChecker(ServiceRegistry(Config(services=tuple(services))))
    await checker.start_monitoring()
    try:
        scheduler = checker.scheduler
        await checker.start_monitoring()  # idempotent: still one timer each
        assert scheduler.services == 51
        now = asyncio.get_running_loop().time()
        for name in checker.states:
            bound = min(checker.states[name].config.interval, FIRST_PROBE_WITHIN)
            assert now <= scheduler.planned(name) <= now + bound
        checker.registry.replace(Config(services=(py("s1", interval=600.0), py("fresh", interval=600.0))))
        checker.sync()
        assert scheduler.services == 2
        assert scheduler.planned("s0") is None and scheduler.planned("fresh") is not None
        # removed and added back: one plan again, never two
        checker.registry.replace(Config(services=(py("s1", interval=600.0), py("fresh", interval=600.0),
                                                  py("s0", interval=0.05))))
        checker.sync()
        assert scheduler.services == 3
        live = [t for _p, t, n in scheduler._heap if n == "s0" and scheduler._live[n][1] == t]
        assert len(live) == 1  # the old entry is still in the heap, but dead
        await wait_for(lambda: checker.states["s0"].probes["success"] >= 3)
    finally:
        await checker.stop_monitoring()
    assert checker.scheduler is None


async def test_a_start_that_fails_does_not_end_the_schedule(monkeypatch):
    checker = HealthChecker(ServiceRegistry(Config(services=(py("s", interval=0.05),))))
    real = checker.start_probe
    calls = []

    def flaky(name, planned=None):
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("first start fails")
        return real(name, planned=planned)

    monkeypatch.setattr(checker, "start_probe", flaky)
    await checker.start_monitoring()
    try:
        await wait_for(lambda: checker.states["s"].probes["success"] >= 2)
    finally:
        await checker.stop_monitoring()
    assert len(calls) >= 3


async def test_the_scheduler_runs_on_callables_alone():
    # No checker: it is told how to start a probe, whether one runs, the interval, and
    # where to count a skipped tick.
    started, skipped = [], []
    intervals = {"idle": 0.05, "busy": 0.05}
    scheduler = Scheduler(
        start_probe=lambda name, planned: started.append(name),
        is_running=lambda name: name == "busy",
        interval=intervals.get,
        skipped=skipped.append,
    )
    await scheduler.start(["idle", "busy", "gone"])
    try:
        assert scheduler.services == 2  # "gone" has no interval: not planned
        await wait_for(lambda: started.count("idle") >= 2 and len(skipped) >= 2)
        assert set(started) == {"idle"}
        assert set(skipped) == {"busy"}
    finally:
        await scheduler.stop()
