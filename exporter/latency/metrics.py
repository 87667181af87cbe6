"""Prometheus metrics of latency records and measured operations, on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyMetrics:
    """usdcop_operation_*, usdcop_operations_expired_total, usdcop_forwarder_dropped_total and
    usdcop_latency_pairs_rejected_total, created on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "usdcop_operation_latency_seconds",
            "Latency of recorded and measured operations.",
            ["service", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "usdcop_operation_errors",
            "Unsuccessful latency records and measured operations.",
            ["service", "operation"],
            registry=registry,
        )
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
        # labels() takes a lock and builds a key on every call; the guard bounds this cache.
        self._children: dict[tuple[str, str], tuple[Histogram, Counter]] = {}

    def _child(self, service: str, operation: str) -> tuple[Histogram, Counter]:
        child = self._children.get((service, operation))
        if child is None:
            # The errors series starts at 0 with the latency series, so rate() works at once.
            child = (self.latency.labels(service, operation), self.errors.labels(service, operation))
            self._children[(service, operation)] = child
        return child

    def observe(
        self,
        service: str,
        operation: str,
        latency_ms: float,
        success: bool = True,
        trace_id: str | None = None,
    ) -> None:
        """Record one latency (milliseconds in, seconds exported); `trace_id` becomes an exemplar."""
        histogram, errors = self._child(service, operation)
        if trace_id is None:
            histogram.observe(latency_ms / 1000.0)
        else:
            histogram.observe(latency_ms / 1000.0, exemplar={"trace_id": trace_id})
        if not success:
            errors.inc()

    def pairs_rejected(self, n: int = 1) -> None:
        """Count pairs refused by the cardinality guard."""
        self.rejected.inc(n)

    def operations_expired(self, n: int = 1) -> None:
        """Count operations that expired without being ended."""
        self.expired.inc(n)

    def forward_dropped(self, n: int = 1) -> None:
        """Count records the forwarder gave up on."""
        self.dropped.inc(n)
