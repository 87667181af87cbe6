"""The cache layer's own metrics, created on the registry they are given (never at import)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .layout import CACHE_LABELS

KEY_KINDS = ("signal", "history", "financial", "position", "custom")
MIRROR_ERROR_REASONS = ("not_json", "wrong_type", "invalid", "too_large")
OVERFLOW_KINDS = ("symbol", "custom")
MIRROR_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HEALTH_DROP_REASONS = ("queue_full", "unavailable")


class CacheMetrics:
    """Hits, misses, evictions by reason and (in-memory backend) entries, by cache.

    `forward(cache, hit)`, when given, is also told of every read: in an engine it hands
    the read to the latency forwarder, which sends the counts to the sidecar.
    """

    def __init__(self, registry: CollectorRegistry,
                 forward: Callable[[str, bool], None] | None = None) -> None:
        self._registry = registry
        self._forward = forward
        self.requests = Counter(
            "usdcop_cache_requests", "Cache reads by cache and result (hit or miss).",
            ["cache", "result"], registry=registry,
        )
        self.evictions = Counter(
            "usdcop_cache_evictions", "Entries the in-memory cache dropped, by reason.",
            ["cache", "reason"], registry=registry,
        )
        for cache in CACHE_LABELS:
            for result in ("hit", "miss"):
                self.requests.labels(cache, result)
            for reason in ("ttl", "capacity"):
                self.evictions.labels(cache, reason)
        self.entries: Gauge | None = None

    def request(self, cache: str, hit: bool) -> None:
        """Count one read."""
        self.requests.labels(cache, "hit" if hit else "miss").inc()
        if self._forward is not None:
            self._forward(cache, hit)

    def add(self, cache: str, result: str, count: int) -> None:
        """Add reads an engine counted and forwarded."""
        self.requests.labels(cache, result).inc(count)

    def evicted(self, cache: str, reason: str) -> None:
        """Count one eviction (ttl or capacity)."""
        self.evictions.labels(cache, reason).inc()

    def track_entries(self, count: Callable[[str], int]) -> None:
        """Export `usdcop_cache_entries` from an in-memory count (read at scrape time)."""
        if self.entries is None:
            self.entries = Gauge(
                "usdcop_cache_entries", "Entries held by the in-memory cache backend.",
                ["cache"], registry=self._registry,
            )
        for cache in CACHE_LABELS:
            self.entries.labels(cache).set_function(lambda c=cache: count(c))


class MirrorMetrics:
    """The Redis mirror's cycle time, bad values and overflow beyond its caps."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "usdcop_mirror_duration_seconds", "Time of one mirror cycle reading Redis.",
            buckets=MIRROR_BUCKETS, registry=registry,
        )
        self.errors = Counter(
            "usdcop_mirror_errors", "Mirrored values that could not be used, per cycle seen.",
            ["key_kind", "reason"], registry=registry,
        )
        self.overflow = Counter(
            "usdcop_mirror_overflow", "Symbols or custom metrics left out by the caps, per scan.",
            ["kind"], registry=registry,
        )
        for kind in KEY_KINDS:
            for reason in MIRROR_ERROR_REASONS:
                self.errors.labels(kind, reason)
        for kind in OVERFLOW_KINDS:
            self.overflow.labels(kind)


class HealthWriterMetrics:
    """Health results that were not published to Redis, by reason."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "usdcop_health_publish_dropped",
            "Health results not written to Redis (queue full, Redis unavailable).",
            ["reason"], registry=registry,
        )
        for reason in HEALTH_DROP_REASONS:
            self.dropped.labels(reason)
