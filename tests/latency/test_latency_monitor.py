"""LatencyMonitor: stats on the window, averages and trends over time, outliers, the guard."""

from __future__ import annotations

import math
import statistics
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.latency import (
    InvalidNameError,
    LatencyMetrics,
    LatencyMonitor,
    LatencyRecord,
    PairLimitError,
)
from exporter.latency.monitor import trend_of


def test_stats_of_one_pair_and_of_a_service(clock):
    monitor = LatencyMonitor(clock=clock)
    for ms, ok in [(10, True), (20, True), (30, False), (40, True)]:
        monitor.record_latency("trading-api", "execute_trade", ms, ok, {"symbol": "USDCOP"})
    monitor.record_latency("trading-api", "quote", 100)
    monitor.record_latency("ml-analytics", "predict", 5)

    pair = monitor.get_latency_stats("trading-api", "execute_trade")
    assert pair == {
        "service": "trading-api",
        "operation": "execute_trade",
        "count": 4,
        "success_ratio": 0.75,
        "mean_ms": 25.0,
        "min_ms": 10.0,
        "max_ms": 40.0,
        "p50_ms": 25.0,
        "p95_ms": pytest.approx(38.5),
        "p99_ms": pytest.approx(39.7),
    }
    service = monitor.get_latency_stats("trading-api")
    assert service["operation"] is None
    assert service["count"] == 5 and service["max_ms"] == 100.0 and service["mean_ms"] == 40.0


def test_stats_without_data_are_count_zero_and_nulls(clock):
    monitor = LatencyMonitor(clock=clock)
    monitor.record_latency("a", "x", 1)
    empty = monitor.get_latency_stats("nobody", "nothing")
    assert empty["count"] == 0 and empty["service"] == "nobody" and empty["operation"] == "nothing"
    assert [
        empty[k]
        for k in ("success_ratio", "mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms")
    ] == [None] * 7
    assert monitor.get_average_latency("nobody") is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["svc-a", "svc-b"]),
            st.sampled_from(["op1", "op2"]),
            st.floats(min_value=0, max_value=1e5, allow_nan=False),
            st.booleans(),
        ),
        min_size=1,
        max_size=200,
    ),
    st.integers(min_value=1, max_value=150),
)
@settings(max_examples=100, deadline=None)
def test_stats_match_a_direct_computation_on_the_kept_window(records, window):
    monitor = LatencyMonitor(window=window)
    for service, operation, ms, ok in records:
        monitor.record_latency(service, operation, ms, ok)
    kept = records[-window:]
    assert len(monitor) == len(kept)
    for service in ("svc-a", "svc-b"):
        for operation in ("op1", "op2", None):
            rows = [r for r in kept if r[0] == service and (operation is None or r[1] == operation)]
            got = monitor.get_latency_stats(service, operation)
            assert got["count"] == len(rows)
            if not rows:
                assert got["mean_ms"] is None
                continue
            values = [r[2] for r in rows]
            assert got["success_ratio"] == sum(r[3] for r in rows) / len(rows)
            assert got["mean_ms"] == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-9)
            assert (got["min_ms"], got["max_ms"]) == (min(values), max(values))
            if len(values) > 1:
                cuts = statistics.quantiles(values, n=100, method="inclusive")
                assert got["p95_ms"] == pytest.approx(cuts[94], rel=1e-9, abs=1e-6)
                assert got["p99_ms"] == pytest.approx(cuts[98], rel=1e-9, abs=1e-6)


def test_window_keeps_the_last_n_measurements_of_all_services(clock):
    monitor = LatencyMonitor(window=5, clock=clock)
    for ms in (1, 2, 3):
        monitor.record_latency("old", "op", ms)
    for ms in (10, 20, 30, 40):
        monitor.record_latency("new", "op", ms)
    assert len(monitor) == 5
    assert monitor.get_latency_stats("old", "op")["count"] == 1
    assert monitor.get_latency_stats("old", "op")["min_ms"] == 3.0
    assert monitor.get_latency_stats("new")["count"] == 4


def test_default_window_is_ten_thousand():
    monitor = LatencyMonitor()
    assert monitor.window_size == 10_000
    for i in range(10_050):
        monitor.record_latency("svc", "op", i % 100)
    assert len(monitor) == 10_000
    assert monitor.get_latency_stats("svc", "op")["count"] == 10_000


def test_average_covers_the_last_minutes_only(clock):
    monitor = LatencyMonitor(clock=clock)
    monitor.record_latency("svc", "a", 1000)  # t=0
    clock.advance(200)
    monitor.record_latency("svc", "a", 10)  # t=200
    monitor.record_latency("svc", "b", 30)
    clock.advance(100)  # now t=300: the first record is exactly 5 min old, so it is out
    assert monitor.get_average_latency("svc", 5) == 20.0
    assert monitor.get_average("svc", 5) == {
        "service": "svc",
        "minutes": 5.0,
        "average_ms": 20.0,
        "count": 2,
    }
    assert monitor.get_average_latency("svc", 5.5) == pytest.approx(1040 / 3)
    clock.advance(1000)
    assert monitor.get_average("svc", 5)["average_ms"] is None
    assert monitor.get_average("svc", 5)["count"] == 0


def _series(monitor, clock, previous, current, minutes=5):
    """Previous window's values, then the current window's, spread inside each window."""
    for values in (previous, current):
        for value in values:
            monitor.record_latency("svc", "op", value)
            clock.advance(minutes * 60 / (len(values) + 1))
        clock.advance(minutes * 60 / (len(values) + 1) if values else minutes * 60)


@pytest.mark.parametrize(
    ("previous", "current", "trend", "ratio"),
    [
        ([100, 100], [120, 120], "degrading", 0.2),
        ([100, 100], [80, 80], "improving", -0.2),
        ([100, 100], [95, 105], "stable", 0.0),
        ([100, 100], [110, 110], "stable", 0.1),  # the ±10 % band is inclusive
        ([100, 100], [89, 89], "improving", -0.11),
        ([], [50], "stable", None),  # nothing to compare with
        ([50], [], "stable", None),
    ],
)
def test_trend_on_constructed_series(clock, previous, current, trend, ratio):
    monitor = LatencyMonitor(clock=clock)
    start = clock.now
    _series(monitor, clock, previous, current)
    clock.now = start + 600 - 1  # one second before the end of the current window
    got = monitor.get_latency_trend("svc", "op", 5)
    assert list(got) == ["trend", "current_mean_ms", "previous_mean_ms", "change_ratio"]
    assert got["trend"] == trend
    assert got["current_mean_ms"] == (statistics.fmean(current) if current else None)
    assert got["previous_mean_ms"] == (statistics.fmean(previous) if previous else None)
    assert got["change_ratio"] == (None if ratio is None else pytest.approx(ratio))


def test_trend_ignores_records_older_than_two_windows(clock):
    monitor = LatencyMonitor(clock=clock)
    monitor.record_latency("svc", "op", 9999)  # t=0, far older than 2 × 1 min
    clock.advance(300)
    monitor.record_latency("svc", "op", 100)  # previous window
    clock.advance(60)
    monitor.record_latency("svc", "op", 100)  # current window
    got = monitor.get_latency_trend("svc", "op", minutes=1)
    assert got == {
        "trend": "stable",
        "current_mean_ms": 100.0,
        "previous_mean_ms": 100.0,
        "change_ratio": 0.0,
    }
    # operation None: all of the service's operations
    monitor.record_latency("svc", "other", 400)
    assert monitor.get_latency_trend("svc", None, 1)["current_mean_ms"] == 250.0


def test_trend_from_zero():
    assert trend_of(5.0, 0.0) == {"trend": "degrading", "change_ratio": None}
    assert trend_of(0.0, 0.0) == {"trend": "stable", "change_ratio": 0.0}
    assert trend_of(0.0, 5.0) == {"trend": "improving", "change_ratio": -1.0}


def test_high_latency_services(clock):
    monitor = LatencyMonitor(clock=clock)
    for ms in (2000, 4000):
        monitor.record_latency("slow", "op", ms)
    monitor.record_latency("fast", "op", 10)
    monitor.record_latency("edge", "op", 1000)  # not above 1000
    monitor.record_latency("slower", "op", 5000)
    got = monitor.get_high_latency_services(1000, 5)
    assert got == [
        {"service": "slower", "operation": "op", "mean_ms": 5000.0, "p95_ms": 5000.0, "count": 1},
        {"service": "slow", "operation": "op", "mean_ms": 3000.0, "p95_ms": 3900.0, "count": 2},
    ]
    assert [r["service"] for r in monitor.get_high_latency_services(5)] == [
        "slower",
        "slow",
        "edge",
        "fast",
    ]
    clock.advance(301)
    assert monitor.get_high_latency_services(0, 5) == []
    assert len(monitor.get_high_latency_services(0, 10)) == 4


def test_clear_one_service_or_all(clock):
    registry = CollectorRegistry()
    monitor = LatencyMonitor(metrics=LatencyMetrics(registry), clock=clock)
    for service in ("a", "b", "a", "c"):
        monitor.record_latency(service, "op", 1)
    assert monitor.clear("a") == 2
    assert monitor.clear("a") == 0
    assert monitor.get_latency_stats("a")["count"] == 0
    assert monitor.get_latency_stats("b")["count"] == 1
    assert monitor.clear() == 2
    assert len(monitor) == 0
    # the counters of what was recorded stay
    assert (
        registry.get_sample_value(
            "usdcop_operation_latency_seconds_count", {"service": "a", "operation": "op"}
        )
        == 2
    )
    monitor.record_latency("a", "op", 1)  # and the window refills
    assert len(monitor) == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("bad name", "op", 1), {}, InvalidNameError, "service must match"),
        (("svc", "", 1), {}, InvalidNameError, "operation must match"),
        (("svc", "o" * 65, 1), {}, InvalidNameError, "operation must match"),
        (("svc", None, 1), {}, InvalidNameError, "operation must match"),
        (("svc", "op", -1), {}, ValueError, "latency_ms must be a finite number between 0"),
        (("svc", "op", math.nan), {}, ValueError, "latency_ms must be a finite number"),
        (("svc", "op", math.inf), {}, ValueError, "latency_ms must be a finite number"),
        (("svc", "op", 86_400_001), {}, ValueError, "latency_ms must be a finite number"),
        (("svc", "op", "12"), {}, TypeError, "latency_ms must be a number, got str"),
        (("svc", "op", True), {}, TypeError, "latency_ms must be a number, got bool"),
        (("svc", "op", 1, "yes"), {}, TypeError, "success must be True or False"),
        (("svc", "op", 1, True, ["meta"]), {}, TypeError, "metadata must be a mapping"),
        (("svc", "op", 1), {"trace_id": "has space"}, InvalidNameError, "trace_id must match"),
    ],
)
def test_bad_arguments_are_named_and_change_nothing(args, kwargs, error, message):
    registry = CollectorRegistry()
    monitor = LatencyMonitor(metrics=LatencyMetrics(registry))
    with pytest.raises(error, match=message):
        monitor.record_latency(*args, **kwargs)
    assert len(monitor) == 0
    assert len(monitor.guard) == 0
    assert (
        registry.get_sample_value(
            "usdcop_operation_latency_seconds_count", {"service": "svc", "operation": "op"}
        )
        is None
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.get_average_latency("s", 0), "minutes must be a finite number above 0"),
        (lambda m: m.get_latency_trend("s", "o", -5), "minutes must be a finite number above 0"),
        (lambda m: m.get_high_latency_services(-1), "threshold_ms must be a finite number >= 0"),
        (lambda m: m.get_high_latency_services(10, math.inf), "minutes must be a finite number"),
    ],
)
def test_bad_query_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(LatencyMonitor())


def test_cardinality_guard(clock):
    registry = CollectorRegistry()
    monitor = LatencyMonitor(max_pairs=2, metrics=LatencyMetrics(registry), clock=clock)
    monitor.record_latency("svc", "a", 1)
    monitor.record_latency("svc", "b", 1)
    with pytest.raises(PairLimitError, match="already tracking 2 distinct"):
        monitor.record_latency("svc", "c", 1)
    assert registry.get_sample_value("usdcop_latency_pairs_rejected_total") == 1
    monitor.record_latency("svc", "a", 2)  # known pairs still pass
    monitor.clear()  # clearing the window does not free a series
    with pytest.raises(PairLimitError):
        monitor.record_latency("other", "a", 1)
    assert registry.get_sample_value("usdcop_latency_pairs_rejected_total") == 2
    assert (
        registry.get_sample_value(
            "usdcop_operation_latency_seconds_count", {"service": "svc", "operation": "c"}
        )
        is None
    )


def test_batches_are_all_or_nothing(clock):
    registry = CollectorRegistry()
    monitor = LatencyMonitor(max_pairs=3, metrics=LatencyMetrics(registry), clock=clock)
    monitor.record_latency("svc", "a", 1)
    batch = [
        LatencyRecord("svc", "b", 1),
        LatencyRecord("svc", "c", 1),
        LatencyRecord("svc", "d", 1),
        LatencyRecord("svc", "b", 2),
    ]
    with pytest.raises(PairLimitError) as err:
        monitor.record_many(batch)
    assert (err.value.service, err.value.operation) == ("svc", "d")  # the first that did not fit
    assert registry.get_sample_value("usdcop_latency_pairs_rejected_total") == 3
    assert len(monitor) == 1 and len(monitor.guard) == 1
    with pytest.raises(ValueError, match="latency_ms"):
        monitor.record_many([LatencyRecord("svc", "a", 1), LatencyRecord("svc", "a", -1)])
    assert len(monitor) == 1
    assert monitor.record_many(batch[:2] + batch[3:]) == 3
    assert monitor.get_latency_stats("svc", "b")["count"] == 2


def test_concurrent_threads_lose_nothing():
    monitor = LatencyMonitor(window=100_000)

    def work(n):
        for i in range(2000):
            monitor.record_latency(f"svc-{n}", "op", i % 7)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(monitor) == 8000
    assert all(monitor.get_latency_stats(f"svc-{n}")["count"] == 2000 for n in range(4))


def test_trend_from_a_vanishing_mean_has_no_infinite_ratio():
    from exporter.latency.monitor import trend_of

    assert trend_of(1.0, 5e-324) == {"trend": "degrading", "change_ratio": None}
