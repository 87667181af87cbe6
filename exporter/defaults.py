"""The process-wide getters, configured from the environment. Thin on purpose.

Everything underneath takes its dependencies as arguments; only these functions keep a
process-wide instance, so library users get one-call convenience and tests build their own.
"""

from __future__ import annotations

import os
from functools import cache

from loguru import logger

from .audit import AuditLogger
from .cache import MetricsCache, RedisClient, SignalCache
from .cache.metrics import CacheMetrics
from .config.redact import redact_url
from .health.checker import HealthChecker
from .health.registry import ServiceRegistry
from .latency import LatencyLibrary, LatencyMonitor, PerformanceLogger
from .log import StructuredLogger
from .settings import load_settings


def get_logger(**context) -> StructuredLogger:
    """A StructuredLogger with `context` (a new one each call; loguru is the shared part)."""
    return StructuredLogger(**context)


@cache
def get_service_registry() -> ServiceRegistry:
    """The registry loaded from EXPORTER_CONFIG when that file exists, else an empty one."""
    path = os.environ.get("EXPORTER_CONFIG", "services.yaml")
    if os.path.exists(path):
        return ServiceRegistry.from_file(path)
    return ServiceRegistry()


@cache
def get_health_checker() -> HealthChecker:
    """The process-wide HealthChecker over get_service_registry()."""
    return HealthChecker(get_service_registry())


_CACHE_VARIABLES = ("REDIS_URL", "REDIS_URL_FILE", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD",
                    "REDIS_PASSWORD_FILE", "REDIS_NAMESPACE", "SIGNAL_HISTORY_MAX",
                    "CACHE_MAX_SYMBOLS", "CACHE_MAX_SIGNAL_BYTES", "CACHE_MAX_BYTES")


@cache
def _cache_settings():
    # Only the cache's own variables: an unrelated bad setting must not break an engine.
    return load_settings({k: v for k, v in os.environ.items() if k in _CACHE_VARIABLES})


@cache
def _cache_client() -> RedisClient:
    # Reads are counted on the latency kit's private registry and, with EXPORTER_URL,
    # forwarded to the sidecar's usdcop_cache_requests_total.
    settings, kit = _cache_settings(), _latency_kit()
    forward = kit.forwarder.count_cache if kit.forwarder is not None else None
    return RedisClient(namespace=settings.redis_namespace, url=settings.redis_url,
                       metrics=CacheMetrics(kit.registry, forward),
                       max_bytes=settings.cache_max_bytes)


@cache
def get_signal_cache() -> SignalCache:
    """The process-wide SignalCache: Redis when REDIS_URL/REDIS_HOST is set, else in memory."""
    settings = _cache_settings()
    return SignalCache(_cache_client(), history_max=settings.signal_history_max,
                       max_symbols=settings.cache_max_symbols,
                       max_signal_bytes=settings.cache_max_signal_bytes)


@cache
def get_metrics_cache() -> MetricsCache:
    """The process-wide MetricsCache, on the same client as get_signal_cache()."""
    return MetricsCache(_cache_client())


@cache
def _latency_kit() -> LatencyLibrary:
    # Reads only the latency variables, so an unrelated bad setting cannot break an engine.
    return LatencyLibrary.from_env()


def get_latency_monitor() -> LatencyMonitor:
    """The process-wide LatencyMonitor (also forwards to EXPORTER_URL when set)."""
    return _latency_kit().monitor


def get_performance_logger() -> PerformanceLogger:
    """The process-wide PerformanceLogger, sharing the monitor's registry, guard and forwarder."""
    return _latency_kit().performance


@cache
def get_audit_logger() -> AuditLogger:
    """The process-wide AuditLogger: POSTGRES_URL (with the outage spool), else SQLite.

    Logs once where it writes, and which setting changes that.
    """
    settings = load_settings()
    audit = AuditLogger.from_settings(settings)
    if settings.postgres_url:
        logger.info("audit trail: Postgres {} (POSTGRES_URL), outage spool {} (AUDIT_SPOOL_DIR)",
                    redact_url(settings.postgres_url), os.path.abspath(settings.audit_spool_dir))
    else:
        path = os.path.abspath(settings.audit_sqlite_path)
        how = ("AUDIT_SQLITE_PATH" if "AUDIT_SQLITE_PATH" in os.environ
               else "the default; set AUDIT_SQLITE_PATH, or POSTGRES_URL for Postgres")
        logger.info("audit trail: SQLite file {} ({})", path, how)
    return audit
