"""What the latency metrics export, read back through the registry and both exposition formats."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.latency import LatencyMetrics, LatencyMonitor
from exporter.latency.metrics import LATENCY_BUCKETS

LABELS = {"service": "trading-api", "operation": "execute_trade"}


def test_histogram_buckets_count_sum_and_errors(registry):
    monitor = LatencyMonitor(metrics=LatencyMetrics(registry))
    for ms, ok in [(0.5, True), (3, True), (40, False), (700, True), (20_000, False)]:
        monitor.record_latency("trading-api", "execute_trade", ms, ok)
    sample = registry.get_sample_value
    expected_le = {
        0.001: 1,
        0.0025: 1,
        0.005: 2,
        0.01: 2,
        0.025: 2,
        0.05: 3,
        0.1: 3,
        0.25: 3,
        0.5: 3,
        1.0: 4,
        2.5: 4,
        5.0: 4,
        10.0: 4,
    }
    assert tuple(expected_le) == LATENCY_BUCKETS
    for le, count in expected_le.items():
        assert sample("usdcop_operation_latency_seconds_bucket", {**LABELS, "le": str(le)}) == count
    assert sample("usdcop_operation_latency_seconds_bucket", {**LABELS, "le": "+Inf"}) == 5
    assert sample("usdcop_operation_latency_seconds_count", LABELS) == 5
    assert sample("usdcop_operation_latency_seconds_sum", LABELS) == pytest.approx(20.7435)
    assert sample("usdcop_operation_errors_total", LABELS) == 2


def test_series_start_at_zero_and_nothing_exists_before_use(registry):
    metrics = LatencyMetrics(registry)
    text = generate_latest(registry).decode()
    assert "usdcop_operation_errors_total{" not in text
    for name in (
        "usdcop_operations_expired_total",
        "usdcop_forwarder_dropped_total",
        "usdcop_latency_pairs_rejected_total",
    ):
        assert registry.get_sample_value(name) == 0
    metrics.observe("svc", "op", 5, success=True)
    assert (
        registry.get_sample_value(
            "usdcop_operation_errors_total", {"service": "svc", "operation": "op"}
        )
        == 0
    )


def test_nothing_lands_in_the_global_registry(registry):
    LatencyMonitor(metrics=LatencyMetrics(registry)).record_latency("glob-check", "op", 1)
    assert (
        prometheus_client.REGISTRY.get_sample_value(
            "usdcop_operation_latency_seconds_count", {"service": "glob-check", "operation": "op"}
        )
        is None
    )


def test_trace_id_is_an_exemplar_in_openmetrics_only(registry):
    monitor = LatencyMonitor(metrics=LatencyMetrics(registry))
    monitor.record_latency(
        "trading-api", "execute_trade", 42, trace_id="4bf92f3577b34da6a3ce929d0e0e4736"
    )
    monitor.record_latency("trading-api", "quote", 3)
    text = generate_latest(registry).decode()
    assert "trace_id" not in text
    om = generate_openmetrics(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(om)}
    exemplars = [
        (s.labels, s.exemplar)
        for s in families["usdcop_operation_latency_seconds"].samples
        if s.exemplar is not None
    ]
    assert len(exemplars) == 1
    labels, exemplar = exemplars[0]
    assert labels == {**LABELS, "le": "0.05"}
    assert exemplar.labels == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    assert exemplar.value == pytest.approx(0.042)


def test_promtool_finds_nothing_to_complain_about(registry, tmp_path):
    import subprocess

    from tests.support.tools import require_tool

    promtool = require_tool("promtool")
    metrics = LatencyMetrics(registry)
    monitor = LatencyMonitor(metrics=metrics)
    monitor.record_latency("svc", "op", 12, False)
    metrics.pairs_rejected()
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == b"" and done.stderr.strip() == b""


def _normalised(text: str) -> str:
    import re

    text = re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", text)  # creation times differ
    return re.sub(r"(# \{[^}]*\} \S+) \S+", r"\1 T", text)  # and exemplar times


def test_same_exposition_as_prometheus_client_own_histogram():
    from prometheus_client import Counter, Histogram

    ours, theirs = CollectorRegistry(), CollectorRegistry()
    metrics = LatencyMetrics(ours)
    histogram = Histogram(
        "usdcop_operation_latency_seconds",
        "Latency of recorded and measured operations.",
        ["service", "operation"],
        buckets=LATENCY_BUCKETS,
        registry=theirs,
    )
    errors = Counter(
        "usdcop_operation_errors",
        "Unsuccessful latency records and measured operations.",
        ["service", "operation"],
        registry=theirs,
    )
    for extra in (
        "usdcop_operations_expired",
        "usdcop_forwarder_dropped",
        "usdcop_latency_pairs_rejected",
    ):
        Counter(
            extra, next(m for m in ours.collect() if m.name == extra).documentation, registry=theirs
        )
    # bucket bounds exactly, between them, zero and beyond the last
    values_ms = [0, 1, 1.0001, 2.5, 7, 10, 100, 250, 999.9, 1000, 5000, 10_000, 10_000.5, 60_000]
    for i, ms in enumerate(values_ms):
        service, operation = ("svc-a", "op") if i % 2 else ("svc-b", "op.v2")
        ok = i % 3 != 0
        trace = f"trace-{i}" if i % 4 else None
        metrics.observe(service, operation, ms, ok, trace)
        child = histogram.labels(service, operation)
        child.observe(ms / 1000, {"trace_id": trace} if trace else None)
        errors.labels(service, operation).inc(0 if ok else 1)
    assert _normalised(generate_latest(ours).decode()) == _normalised(
        generate_latest(theirs).decode()
    )
    assert _normalised(generate_openmetrics(ours).decode()) == _normalised(
        generate_openmetrics(theirs).decode()
    )
