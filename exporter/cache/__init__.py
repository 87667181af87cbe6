"""Cache layer: RedisClient (in-memory or Redis), SignalCache, MetricsCache and the mirror."""

from .client import RedisClient, Transaction
from .collector import MirrorCollector
from .errors import CacheError, CacheTypeError, CacheUnavailable, CacheValueError, SignalError
from .health_writer import HealthWriter
from .memory import MemoryBackend
from .metrics import CacheMetrics, HealthWriterMetrics, MirrorMetrics
from .mirror import Mirror, Snapshot
from .redis_backend import RedisBackend, RedisOptions
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
