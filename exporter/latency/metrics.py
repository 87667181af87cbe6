"""Prometheus metrics of latency records and measured operations, on a registry passed in."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter
from prometheus_client import metrics as _client_metrics
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY = "usdcop_operation_latency_seconds"
ERRORS = "usdcop_operation_errors"
_LATENCY_HELP = "Latency of recorded and measured operations."
_ERRORS_HELP = "Unsuccessful latency records and measured operations."
_LABELS = ("service", "operation")
_LE = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]


class _Series:
    """Counts of one (service, operation): per bucket (not cumulative), sum, errors, exemplars."""

    __slots__ = ("counts", "total", "errors", "exemplars", "created")

    def __init__(self, created: float) -> None:
        self.counts = [0] * len(_LE)
        self.total = 0.0
        self.errors = 0
        # bucket index → (trace id, value, time) of the latest exemplar in it
        self.exemplars: dict[int, tuple[str, float, float]] = {}
        self.created = created


def created_series_enabled() -> bool:
    """prometheus-client's own switch for `_created` samples (disable_created_metrics() or
    PROMETHEUS_DISABLE_CREATED_SERIES), so these families follow the library's."""
    return _client_metrics._use_created


class OperationCollector:
    """usdcop_operation_latency_seconds and usdcop_operation_errors_total from plain counts."""

    # prometheus_client's Histogram with an exemplar costs about 5 µs per observation and a
    # batch of records spent most of its time there. Plain counts under one lock cost under
    # 1 µs; collect() turns a copy into the very same families (with `_created` unless
    # prometheus-client's are switched off) at scrape time.

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    def observe(
        self, service: str, operation: str, seconds: float, success: bool, trace_id: str | None
    ) -> None:
        """Count one observation; the trace id becomes its bucket's exemplar."""
        self.observe_many(((service, operation),), (seconds,), (success,), (trace_id,))

    def observe_many(
        self,
        keys: Sequence[tuple[str, str]],
        seconds: Sequence[float],
        successes: Sequence[bool],
        trace_ids: Sequence[str | None],
    ) -> None:
        """Count observations given as columns (`keys[i]` is the (service, operation) of the
        i-th), under one lock and one clock reading; in each bucket the last trace id is the
        exemplar."""
        now = time.time()
        with self._lock:
            by_key = self._series
            for key, value, success, trace_id in zip(
                keys, seconds, successes, trace_ids, strict=True
            ):
                series = by_key.get(key)
                if series is None:
                    series = by_key[key] = _Series(now)
                index = bisect_left(LATENCY_BUCKETS, value)  # first bound >= value
                series.counts[index] += 1
                series.total += value
                if not success:
                    series.errors += 1
                if trace_id is not None:
                    series.exemplars[index] = (trace_id, value, now)

    def describe(self) -> list[Metric]:
        """The two families, without samples (so registering does not collect)."""
        return [
            HistogramMetricFamily(LATENCY, _LATENCY_HELP, labels=_LABELS),
            CounterMetricFamily(ERRORS, _ERRORS_HELP, labels=_LABELS),
        ]

    def collect(self) -> Iterator[Metric]:
        """Build the families from a snapshot taken under the lock; no I/O."""
        with self._lock:
            snapshot = [
                (key, list(s.counts), s.total, s.errors, dict(s.exemplars), s.created)
                for key, s in self._series.items()
            ]
        latency, errors = self.describe()
        with_created = created_series_enabled()
        for (service, operation), counts, total, failed, exemplars, created in snapshot:
            buckets: list = []
            cumulative = 0
            for index, le in enumerate(_LE):
                cumulative += counts[index]
                exemplar = exemplars.get(index)
                if exemplar is None:
                    buckets.append((le, cumulative))
                else:
                    trace_id, value, at = exemplar
                    buckets.append((le, cumulative, Exemplar({"trace_id": trace_id}, value, at)))
            latency.add_metric([service, operation], buckets, total)
            if with_created:
                labels = {"service": service, "operation": operation}
                latency.samples.append(Sample(f"{LATENCY}_created", labels, created))
            errors.add_metric([service, operation], failed,
                              created=created if with_created else None)
        yield latency
        yield errors


class LatencyMetrics:
    """The latency feature's metrics (operations, expired, dropped, rejected) on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.operations = OperationCollector()
        registry.register(self.operations)
        self.expired = Counter(
            "usdcop_operations_expired",
            "Operations started and never ended, dropped after the expiry time.",
            registry=registry,
        )
        self.dropped = Counter(
            "usdcop_forwarder_dropped",
            "Library records not forwarded to the sidecar (buffer full, sidecar away or refusing).",
            registry=registry,
        )
        self.rejected = Counter(
            "usdcop_latency_pairs_rejected",
            "New (service, operation) pairs refused by the cardinality guard.",
            registry=registry,
        )

    def observe(
        self,
        service: str,
        operation: str,
        latency_ms: float,
        success: bool = True,
        trace_id: str | None = None,
    ) -> None:
        """Record one latency (ms in, seconds exported); `trace_id` becomes an exemplar."""
        self.operations.observe(service, operation, latency_ms / 1000.0, success, trace_id)

    def observe_many(
        self,
        keys: Sequence[tuple[str, str]],
        latencies_ms: Sequence[float],
        successes: Sequence[bool],
        trace_ids: Sequence[str | None],
    ) -> None:
        """Record latencies given as columns (ms in, seconds exported), as `observe` each."""
        seconds = [ms / 1000.0 for ms in latencies_ms]
        self.operations.observe_many(keys, seconds, successes, trace_ids)

    def pairs_rejected(self, n: int = 1) -> None:
        """Count pairs refused by the cardinality guard."""
        self.rejected.inc(n)

    def operations_expired(self, n: int = 1) -> None:
        """Count operations that expired without being ended."""
        self.expired.inc(n)

    def forward_dropped(self, n: int = 1) -> None:
        """Count records the forwarder gave up on."""
        self.dropped.inc(n)
