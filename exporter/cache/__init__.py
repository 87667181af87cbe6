"""Cache layer: RedisClient (in-memory or Redis), SignalCache, MetricsCache and the mirror."""

from .client import RedisClient, Transaction
from .collector import MirrorCollector
from .errors import CacheError, CacheTypeError, CacheUnavailable, CacheValueError, SignalError
from .health_writer import HealthWriter
from .memory import MemoryBackend
from .metrics import CacheMetrics, HealthWriterMetrics, MirrorMetrics
from .mirror import Mirror, Snapshot
from .signals import SignalCache, validate_signal
from .trading_metrics import MetricsCache

__all__ = [
    "CacheError",
    "CacheMetrics",
    "CacheTypeError",
    "CacheUnavailable",
    "CacheValueError",
    "HealthWriter",
    "HealthWriterMetrics",
    "MemoryBackend",
    "MetricsCache",
    "Mirror",
    "MirrorCollector",
    "MirrorMetrics",
    "RedisBackend",
    "RedisClient",
    "RedisOptions",
    "SignalCache",
    "SignalError",
    "Snapshot",
    "Transaction",
    "validate_signal",
]


def __getattr__(name: str):
    # the Redis backend brings redis-py (~7 MiB): loaded on first use, not by every sidecar
    if name in ("RedisBackend", "RedisOptions"):
        from . import redis_backend

        return getattr(redis_backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
