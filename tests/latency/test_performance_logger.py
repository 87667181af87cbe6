"""PerformanceLogger: start/end, every form of measure, metrics, slow operations and expiry."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from exporter.latency import InvalidNameError, LatencyMetrics, PairGuard, PairLimitError
from exporter.latency.performance import PerformanceLogger


@pytest.fixture
def perf(registry, clock, mono) -> PerformanceLogger:
    return PerformanceLogger(
        "engine", metrics=LatencyMetrics(registry), clock=clock, monotonic=mono
    )


def test_start_and_end(perf, registry, clock, mono):
    op = perf.start_operation("model_inference", {"model": "xgboost"})
    mono.advance(0.125)
    assert perf.end_operation(op, True, {"rows": 3}) == pytest.approx(125.0)
    metrics = perf.get_metrics("model_inference")
    assert metrics["name"] == "model_inference" and metrics["count"] == 1
    assert metrics["mean_ms"] == pytest.approx(125.0) and metrics["success_ratio"] == 1.0
    labels = {"service": "engine", "operation": "model_inference"}
    assert registry.get_sample_value("usdcop_operation_latency_seconds_count", labels) == 1
    assert registry.get_sample_value(
        "usdcop_operation_latency_seconds_sum", labels
    ) == pytest.approx(0.125)
    [slow] = perf.get_slow_operations(100)
    assert slow == {
        "name": "model_inference",
        "duration_ms": pytest.approx(125.0),
        "success": True,
        "started_at": "2023-11-14T22:13:20+00:00",
        "metadata": {"model": "xgboost", "rows": 3},
    }


def test_unknown_id_is_logged_not_raised(perf):
    assert perf.end_operation("nope-1") is None
    op = perf.start_operation("x")
    assert perf.end_operation(op) is not None
    assert perf.end_operation(op) is None  # ended twice


def test_measure_as_sync_and_async_context_manager(perf, mono, registry):
    with perf.measure("sync_block"):
        mono.advance(0.010)
    with pytest.raises(KeyError), perf.measure("sync_block"):
        mono.advance(0.030)
        raise KeyError("boom")

    async def run():
        async with perf.measure("async_block"):
            mono.advance(0.020)

    asyncio.run(run())
    sync = perf.get_metrics("sync_block")
    assert sync["count"] == 2 and sync["success_ratio"] == 0.5
    assert (sync["min_ms"], sync["max_ms"]) == (pytest.approx(10), pytest.approx(30))
    assert perf.get_metrics("async_block")["mean_ms"] == pytest.approx(20)
    assert (
        registry.get_sample_value(
            "usdcop_operation_errors_total", {"service": "engine", "operation": "sync_block"}
        )
        == 1
    )


async def test_measure_as_decorator_of_sync_and_async_functions(perf, mono):
    @perf.measure("add")
    def add(a, b):
        mono.advance(0.005)
        return a + b

    @perf.measure("fetch")
    async def fetch(x, *, fail=False):
        await asyncio.sleep(0)
        mono.advance(0.050)
        if fail:
            raise RuntimeError("down")
        return x * 2

    assert add.__name__ == "add" and fetch.__name__ == "fetch"
    assert add(2, 3) == 5
    assert await fetch(21) == 42
    with pytest.raises(RuntimeError, match="down"):
        await fetch(1, fail=True)
    assert perf.get_metrics("add")["count"] == 1
    fetched = perf.get_metrics("fetch")
    assert fetched["count"] == 2 and fetched["success_ratio"] == 0.5
    assert fetched["mean_ms"] == pytest.approx(50)
    assert perf.get_summary()["in_flight"] == 0


async def test_measure_awaits_a_callable_and_returns_its_result(perf, mono):
    async def call():
        mono.advance(0.2)
        return {"ok": True}

    assert await perf.measure("api_call", call) == {"ok": True}
    assert await perf.measure("api_call", lambda: 7) == 7  # a plain function is called too

    async def failing():
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await perf.measure("api_call", failing)
    got = perf.get_metrics("api_call")
    assert got["count"] == 3 and got["success_ratio"] == pytest.approx(2 / 3)
    assert got["max_ms"] == pytest.approx(200)


async def test_cancellation_ends_unsuccessful_and_propagates(perf):
    started = asyncio.Event()

    async def hang():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(perf.measure("hang", hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert perf.get_metrics("hang")["success_ratio"] == 0.0
    assert perf.get_summary()["in_flight"] == 0


def test_operations_never_ended_expire_after_ten_minutes(perf, mono, registry):
    first = perf.start_operation("forgotten")
    mono.advance(300)
    second = perf.start_operation("forgotten")
    mono.advance(299.5)
    assert perf.get_summary()["in_flight"] == 2
    mono.advance(0.5)  # the first is now 600 s old
    summary = perf.get_summary()
    assert (summary["in_flight"], summary["expired"]) == (1, 1)
    assert registry.get_sample_value("usdcop_operations_expired_total") == 1
    assert perf.end_operation(first) is None  # too late: already counted as expired
    assert perf.end_operation(second) == pytest.approx(600_000 - 300_000)
    assert perf.get_summary()["expired"] == 1


def test_summary_and_slow_operations(perf, mono):
    for name, ms, ok in [("a", 5, True), ("a", 15, False), ("b", 1500, True), ("c", 900, True)]:
        op = perf.start_operation(name)
        mono.advance(ms / 1000)
        perf.end_operation(op, ok)
    perf.start_operation("d")
    summary = perf.get_summary()
    assert sorted(summary["operations"]) == ["a", "b", "c"]
    assert summary["operations"]["a"]["mean_ms"] == pytest.approx(10)
    assert summary["operations"]["a"]["success_ratio"] == 0.5
    assert (summary["total_count"], summary["in_flight"], summary["expired"]) == (4, 1, 0)
    assert [s["name"] for s in perf.get_slow_operations(10)] == ["b", "c", "a"]
    assert perf.get_slow_operations(2000) == []
    assert perf.get_metrics("never")["count"] == 0 and perf.get_metrics("never")["p99_ms"] is None


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: p.start_operation("has space"), InvalidNameError, "name must match"),
        (lambda p: p.measure(""), InvalidNameError, "name must match"),
        (lambda p: p.start_operation("ok", ["x"]), TypeError, "metadata must be a mapping"),
        (lambda p: p.end_operation("x-1", "yes"), TypeError, "success must be True or False"),
        (lambda p: p.get_slow_operations(-1), ValueError, "threshold_ms must be a finite number"),
        (lambda p: PerformanceLogger("bad name"), InvalidNameError, "service_name must match"),
        (lambda p: PerformanceLogger(expire_after=0), ValueError, "expire_after must be above 0"),
    ],
)
def test_bad_arguments_are_named(perf, call, error, message):
    with pytest.raises(error, match=message):
        call(perf)
    assert perf.get_summary() == {"operations": {}, "total_count": 0, "in_flight": 0, "expired": 0}


def test_shares_the_guard_with_the_monitor(registry):
    metrics = LatencyMetrics(registry)
    guard = PairGuard(1, metrics)
    perf = PerformanceLogger("engine", metrics=metrics, guard=guard)
    perf.end_operation(perf.start_operation("first"))
    with pytest.raises(PairLimitError):
        perf.start_operation("second")
    assert registry.get_sample_value("usdcop_latency_pairs_rejected_total") == 1
    assert perf.get_summary()["in_flight"] == 0


def test_window_bounds_ended_operations(mono, clock):
    perf = PerformanceLogger(
        window=3, clock=clock, monotonic=mono, metrics=LatencyMetrics(CollectorRegistry())
    )
    for _ in range(5):
        perf.end_operation(perf.start_operation("op"))
    assert perf.get_metrics("op")["count"] == 3
    assert perf.get_summary()["total_count"] == 3
