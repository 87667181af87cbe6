"""HealthChecker and Scheduler on real probes of python checks (no network needed)."""

import asyncio

import pytest
from loguru import logger
from prometheus_client import CollectorRegistry, generate_latest

from exporter.config.model import Config, ServiceConfig
from exporter.health.checker import HealthChecker, NotInShard, UnknownService
from exporter.health.collector import ServiceCollector
from exporter.health.registry import ServiceRegistry


async def wait_for(predicate, timeout=5.0):
    """Poll `predicate` until true or fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def py_service(name, fn, **kw):
    return ServiceConfig(name=name, type="python", check_fn=fn, **kw)


class Gate:
    """A python health check that blocks until released and counts concurrent runs."""

    def __init__(self, success=True):
        self.event = asyncio.Event()
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.success = success

    async def __call__(self):
        self.calls += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await self.event.wait()
        finally:
            self.running -= 1
        return {"success": self.success, "latency_ms": 1, "metadata": {"gate": True}}


async def quick_ok():
    return {"success": True, "latency_ms": 2, "metadata": {"model": "v1"}}


async def quick_fail():
    return {"success": False, "latency_ms": 2, "metadata": {}}


async def test_register_and_check_a_python_service():
    checker = HealthChecker()
    checker.register_service("model", health_check=quick_ok)
    health = await checker.check_service("model")
    assert health["service"] == "model"
    assert health["status"] == "healthy"
    assert health["metadata"]["reported"] == {"model": "v1"}


async def test_unknown_service_raises_its_own_type():
    # Not a KeyError: the API answers 404 for UnknownService only, so a KeyError from a
    # real bug is not passed off as "no such service".
    with pytest.raises(UnknownService) as caught:
        await HealthChecker().check_service("nope")
    assert not isinstance(caught.value, KeyError)


async def test_post_joins_a_probe_in_flight():
    gate = Gate()
    checker = HealthChecker(ServiceRegistry(Config(services=(py_service("g", gate),))))
    first = asyncio.ensure_future(checker.check_service("g"))
    await wait_for(lambda: gate.calls == 1)
    second = asyncio.ensure_future(checker.check_service("g"))
    await asyncio.sleep(0.05)
    gate.event.set()
    a, b = await asyncio.gather(first, second)
    assert gate.calls == 1
    assert a == b
    assert checker.states["g"].probes["success"] == 1


async def test_probe_once_never_touches_state():
    checker = HealthChecker(ServiceRegistry(Config(services=(py_service("m", quick_fail),))))
    result = await checker.probe_once(checker.registry.get("m"))
    assert not result.success
    assert checker.states["m"].status == "unknown"
    assert checker.states["m"].probes == {"success": 0, "failure": 0}


async def test_hard_timeout():
    gate = Gate()
    checker = HealthChecker(ServiceRegistry(Config(services=(py_service("h", gate, timeout=0.1),))))
    health = await checker.check_service("h")
    assert health["status"] == "unhealthy"
    assert health["metadata"]["probe"]["reason"] == "timeout"
    assert gate.running == 0  # the hanging check was cancelled, not left behind


async def test_scheduler_probes_repeatedly_and_skips_overlaps():
    gate = Gate()
    services = (
        py_service("fast", quick_ok, interval=0.05),
        py_service("stuck", gate, interval=0.05, timeout=30),
    )
    checker = HealthChecker(ServiceRegistry(Config(services=services)))
    lags = []
    await checker.start_monitoring(lag_observer=lags.append)
    try:
        await wait_for(lambda: checker.states["fast"].probes["success"] >= 3)
        await wait_for(lambda: checker.states["stuck"].skipped >= 2)
        assert gate.max_running == 1
        assert gate.calls == 1
        assert lags and all(lag >= 0 for lag in lags)
    finally:
        await checker.stop_monitoring()
    assert gate.running == 0  # stop cancels and awaits the probe in flight


async def test_listeners_see_changes_but_a_new_service_found_healthy_is_not_one():
    flip = {"ok": True}

    async def flapping():
        return {"success": flip["ok"], "latency_ms": 1}

    checker = HealthChecker(ServiceRegistry(Config(services=(py_service("f", flapping),))))
    events = []
    checker.add_listener(events.append)
    await checker.check_service("f")
    flip["ok"] = False
    await checker.check_service("f")
    flip["ok"] = True
    await checker.check_service("f")
    assert [(e.old_status, e.new_status, e.changed) for e in events] == [
        ("unknown", "healthy", False),
        ("healthy", "unhealthy", True),
        ("unhealthy", "healthy", True),
    ]


async def test_a_failure_below_the_threshold_claims_no_health():
    """threshold 2, first probe fails: unknown in the API and in /metrics, no "now healthy"
    log line, and the later turn to unhealthy is reported as leaving unknown."""
    checker = HealthChecker(ServiceRegistry(Config(services=(
        py_service("down", quick_fail, failure_threshold=2),
    ))))
    prom = CollectorRegistry()
    prom.register(ServiceCollector(checker))
    events, lines = [], []
    checker.add_listener(events.append)
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="DEBUG")
    try:
        health = await checker.check_service("down")
        assert health["status"] == "unknown"
        assert health["metadata"]["probe"]["reason"] == "reported_unhealthy"
        assert prom.get_sample_value("usdcop_service_up", {"service": "down"}) == 0
        for status, value in (("unknown", 1), ("healthy", 0), ("degraded", 0), ("unhealthy", 0)):
            assert prom.get_sample_value(
                "usdcop_service_status", {"service": "down", "status": status}) == value, status
        assert checker.overview()["summary"]["unknown"] == 1
        assert (await checker.check_service("down"))["status"] == "unhealthy"
    finally:
        logger.remove(sink)
    assert [(e.old_status, e.new_status, e.changed) for e in events] == [
        ("unknown", "unknown", False),
        ("unknown", "unhealthy", True),  # the first trouble seen is recorded, from unknown
    ]
    assert not [line for line in lines if "healthy" in line and "unhealthy" not in line], lines
    assert [line for line in lines if "is now unhealthy" in line]


async def test_a_failing_listener_does_not_stop_probing():
    checker = HealthChecker(ServiceRegistry(Config(services=(py_service("m", quick_ok),))))

    def broken(event):
        raise RuntimeError("listener bug")

    checker.add_listener(broken)
    assert (await checker.check_service("m"))["status"] == "healthy"


async def test_reload_keeps_unchanged_and_drops_removed_series():
    registry = ServiceRegistry(Config(services=(
        py_service("keep", quick_ok), py_service("gone", quick_ok), py_service("edit", quick_ok),
    )))
    checker = HealthChecker(registry)
    for name in ("keep", "gone", "edit"):
        await checker.check_service(name)
    prom = CollectorRegistry()
    prom.register(ServiceCollector(checker))
    assert prom.get_sample_value("usdcop_service_up", {"service": "gone"}) == 1
    registry.replace(Config(services=(
        py_service("keep", quick_ok), py_service("edit", quick_ok, timeout=2.0), py_service("new", quick_ok),
    )))
    assert checker.sync() == (["new"], ["gone"], ["edit"])
    assert checker.states["keep"].probes["success"] == 1
    assert checker.states["edit"].probes["success"] == 1
    assert checker.states["edit"].config.timeout == 2.0
    assert checker.states["new"].status == "unknown"
    assert prom.get_sample_value("usdcop_service_up", {"service": "gone"}) is None
    assert prom.get_sample_value("usdcop_service_probe_timeout_seconds", {"service": "edit"}) == 2.0
    assert prom.get_sample_value("usdcop_service_status", {"service": "new", "status": "unknown"}) == 1
    # unknown: info, status, interval/timeout and zero counters; no up or durations yet
    assert prom.get_sample_value("usdcop_service_up", {"service": "new"}) is None
    assert prom.get_sample_value("usdcop_service_probes_total", {"service": "new", "result": "failure"}) == 0
    assert prom.get_sample_value(
        "usdcop_service_info", {"service": "new", "type": "python", "critical": "true"}) == 1
    lines = generate_latest(prom).decode().splitlines()
    assert not [line for line in lines if "duration_seconds" in line and 'service="new"' in line]
    assert [line for line in lines if "duration_seconds_count" in line and 'service="keep"' in line]


async def test_shards_split_services_exactly_once():
    services = tuple(py_service(f"svc-{i}", quick_ok) for i in range(40))
    registry = ServiceRegistry(Config(services=services))
    shards = [HealthChecker(registry, shard=(i, 3)) for i in range(3)]
    owned = [set(c.overview() and c.states) for c in shards]
    assert set().union(*owned) == {s.name for s in services}
    assert sum(len(o) for o in owned) == 40
    name = next(iter(owned[1]))
    with pytest.raises(NotInShard):
        await shards[0].check_service(name)
    assert shards[0].overview()["shard"] == "0/3"


async def test_a_result_for_a_service_removed_mid_probe_is_dropped():
    gate = Gate()
    registry = ServiceRegistry(Config(services=(py_service("g", gate),)))
    checker = HealthChecker(registry)
    joined = asyncio.ensure_future(checker.check_service("g"))
    await wait_for(lambda: gate.calls == 1)
    registry.replace(Config(services=()))
    checker.sync()
    registry.replace(Config(services=(py_service("g", gate),)))  # re-added: a new state
    checker.sync()
    gate.event.set()
    with pytest.raises(UnknownService):
        await joined
    assert checker.states["g"].status == "unknown"  # the old probe's result was not applied
    assert checker.states["g"].probes == {"success": 0, "failure": 0}
    assert not checker.is_running("g")


async def test_a_shorter_interval_on_reload_brings_the_next_probe_in():
    registry = ServiceRegistry(Config(services=(py_service("x", quick_ok, interval=3600.0),)))
    checker = HealthChecker(registry)  # "x": its first start comes 0.7 s in (spread)
    await checker.start_monitoring()
    try:
        await wait_for(lambda: checker.states["x"].probes["success"] == 1, timeout=15)
        registry.replace(Config(services=(py_service("x", quick_ok, interval=0.05),)))
        checker.sync()
        await wait_for(lambda: checker.states["x"].probes["success"] >= 3)
    finally:
        await checker.stop_monitoring()


async def test_the_shipped_pipeline_api_when_dead_is_unknown_then_unhealthy_never_healthy():
    """services.yaml's pipeline-api (failure_threshold 2, critical: false) on a closed port."""
    from pathlib import Path

    from exporter.config.loader import load_config
    from tests.support.tools import free_port

    shipped = Path(__file__).resolve().parents[2] / "services.yaml"
    dead = f"http://127.0.0.1:{free_port()}/health"
    config = load_config(shipped, environ={"PIPELINE_API_URL": dead.removesuffix("/health")})
    (svc,) = [s for s in config.services if s.name == "pipeline-api"]
    assert (svc.url, svc.failure_threshold, svc.critical) == (dead, 2, False)
    checker = HealthChecker(ServiceRegistry(Config(services=(svc,))))
    prom = CollectorRegistry()
    prom.register(ServiceCollector(checker))
    first = await checker.check_service("pipeline-api")
    assert (first["status"], first["metadata"]["probe"]["reason"]) == ("unknown", "connect")
    assert checker.overview()["overall_status"] == "unknown"
    assert prom.get_sample_value("usdcop_overall_status", {"status": "unknown"}) == 1
    assert prom.get_sample_value(
        "usdcop_service_status", {"service": "pipeline-api", "status": "healthy"}) == 0
    assert prom.get_sample_value("usdcop_service_info", {
        "service": "pipeline-api", "type": "http", "critical": "false",
        "team": "data", "component": "pipeline"}) == 1
    assert (await checker.check_service("pipeline-api"))["status"] == "unhealthy"
    assert checker.overview()["overall_status"] == "degraded"  # not critical


async def test_a_reload_that_points_a_service_elsewhere_forgets_what_the_old_target_showed():
    """Healthy at the old target says nothing of the new one: unknown again until a probe
    of the new target decides; a change of how it is judged keeps the state."""
    ok = py_service("api", quick_ok, failure_threshold=3, check="checks:ok")
    checker = HealthChecker(ServiceRegistry(Config(services=(ok,))))
    assert (await checker.check_service("api"))["status"] == "healthy"
    checker.registry.replace(Config(services=(
        py_service("api", quick_ok, failure_threshold=2, check="checks:ok"),)))
    checker.sync()
    assert checker.state_of("api").status == "healthy"  # only a threshold changed
    checker.registry.replace(Config(services=(
        py_service("api", quick_fail, failure_threshold=2, check="checks:down"),)))
    assert checker.sync()[2] == ["api"]
    assert checker.state_of("api").status == "unknown"
    assert checker.state_of("api").probes["success"] == 1  # counters kept
    assert (await checker.check_service("api"))["status"] == "unknown"  # 1 failure of 2
    assert (await checker.check_service("api"))["status"] == "unhealthy"
