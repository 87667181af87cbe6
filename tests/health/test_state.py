"""Thresholds, observed status and the overall answer (docs/probes.md)."""

import pytest

from exporter.config.model import ServiceConfig
from exporter.health.result import ProbeResult
from exporter.health.state import ServiceState, overall_status, summary


def ok(duration=0.01, reported=None):
    return ProbeResult(success=True, duration_s=duration, reported=reported)


def fail(reason="connect"):
    return ProbeResult.failure(reason, 0.01, "refused")


def svc(**kw):
    return ServiceConfig(name=kw.pop("name", "s"), type="http", url="http://127.0.0.1:1/", **kw)


def test_unknown_until_first_result():
    state = ServiceState(svc())
    assert state.status == "unknown"
    assert state.health_format()["status"] == "unknown"
    assert state.health_format()["latency_ms"] is None


def test_first_success_is_healthy_and_slow_is_degraded():
    state = ServiceState(svc(degraded_latency=0.5))
    assert state.apply(ok(0.1)) == ("unknown", "healthy")
    assert state.apply(ok(0.6)) == ("healthy", "degraded")
    assert state.apply(ok(0.1, reported="degraded")) == ("degraded", "degraded")
    assert state.apply(ok(0.1)) == ("degraded", "healthy")


def test_failure_threshold_and_success_threshold():
    state = ServiceState(svc(failure_threshold=3, success_threshold=2))
    state.apply(ok())
    assert [state.apply(fail())[1] for _ in range(3)] == ["healthy", "healthy", "unhealthy"]
    assert state.apply(ok())[1] == "unhealthy"
    assert state.apply(ok())[1] == "healthy"
    # a failure between successes restarts the count
    for _ in range(3):
        state.apply(fail())
    state.apply(ok())
    state.apply(fail())
    state.apply(ok())
    assert state.status == "unhealthy"


def test_from_unknown_failures_below_the_threshold_stay_unknown():
    state = ServiceState(svc(failure_threshold=3))
    assert state.apply(fail("timeout")) == ("unknown", "unknown")  # no probe showed it healthy
    health = state.health_format()
    assert health["status"] == "unknown"
    assert health["metadata"]["probe"]["reason"] == "timeout"  # the last result is still shown
    assert health["latency_ms"] is not None and health["last_check"] is not None
    assert state.apply(fail()) == ("unknown", "unknown")
    assert state.apply(fail()) == ("unknown", "unhealthy")
    single = ServiceState(svc())
    assert single.apply(fail()) == ("unknown", "unhealthy")


def test_from_unknown_a_success_after_failures_below_the_threshold_is_healthy():
    state = ServiceState(svc(failure_threshold=2, success_threshold=3))
    assert state.apply(fail()) == ("unknown", "unknown")
    assert state.apply(ok()) == ("unknown", "healthy")  # success_threshold is for leaving unhealthy
    assert state.apply(fail()) == ("healthy", "healthy")  # flap control after a real healthy
    assert state.apply(fail()) == ("healthy", "unhealthy")


def test_counters_and_histogram():
    state = ServiceState(svc())
    state.apply(ok(0.003))
    state.apply(ok(0.3))
    state.apply(fail("timeout"))
    assert state.probes == {"success": 2, "failure": 1}
    assert state.failures["timeout"] == 1
    assert sum(state.buckets) == 3
    assert state.buckets[0] == 1  # 0.003 <= 0.005
    assert state.duration_sum == pytest.approx(0.313)


def test_health_format_carries_reason_and_details():
    state = ServiceState(svc(name="api"))
    result = fail("status")
    result.http_status = 503
    state.apply(result, now=1_700_000_000.0)
    health = state.health_format()
    assert health["service"] == "api"
    assert health["status"] == "unhealthy"
    assert health["last_check"] == "2023-11-14T22:13:20.000Z"
    assert health["metadata"]["probe"]["reason"] == "status"
    assert health["metadata"]["probe"]["http_status"] == 503
    assert set(health["details"]) == {"uptime", "requests_per_minute", "error_rate", "memory_usage_mb"}


def _state(status, critical=True):
    state = ServiceState(svc(critical=critical))
    state.status = status
    return state


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "unknown"),
        ([("unknown", True)], "unknown"),
        ([("unknown", True), ("unknown", False)], "unknown"),
        ([("healthy", True), ("unknown", True)], "healthy"),
        ([("healthy", True), ("degraded", False)], "degraded"),
        ([("healthy", True), ("unhealthy", False)], "degraded"),
        ([("degraded", True), ("unhealthy", True)], "unhealthy"),
        ([("unhealthy", False), ("unhealthy", True)], "unhealthy"),
    ],
)
def test_overall(statuses, expected):
    assert overall_status([_state(s, c) for s, c in statuses]) == expected


def test_summary_counts():
    states = [_state("healthy"), _state("unknown"), _state("unhealthy")]
    assert summary(states) == {"total": 3, "healthy": 1, "degraded": 0, "unhealthy": 1, "unknown": 1}
