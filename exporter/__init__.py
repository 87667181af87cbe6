"""usdcop-exporter: observability sidecar and library for the USD/COP trading stack."""

from ._version import __version__
from .audit import (
    AuditConflict,
    AuditError,
    AuditLogger,
    AuditUnavailable,
    AuditValidationError,
)
from .cache import MetricsCache, RedisClient, SignalCache
from .defaults import (
    get_audit_logger,
    get_health_checker,
    get_latency_monitor,
    get_logger,
    get_metrics_cache,
    get_performance_logger,
    get_service_registry,
    get_signal_cache,
)
from .desk.calendar import TradingCalendar
from .desk.halt import HALT_REASONS
from .health.checker import HealthChecker
from .health.push_client import PushError, report_push
from .health.registry import ServiceRegistry
from .latency import LatencyMonitor, PerformanceLogger
from .log import StructuredLogger, setup_logging

__all__ = [
    "__version__",
    "AuditConflict",
    "AuditError",
    "AuditLogger",
    "AuditUnavailable",
    "AuditValidationError",
    "get_audit_logger",
    "HALT_REASONS",
    "TradingCalendar",
    "HealthChecker",
    "PushError",
    "report_push",
    "LatencyMonitor",
    "PerformanceLogger",
    "get_latency_monitor",
    "get_performance_logger",
    "MetricsCache",
    "RedisClient",
    "SignalCache",
    "get_metrics_cache",
    "get_signal_cache",
    "ServiceRegistry",
    "StructuredLogger",
    "setup_logging",
    "get_health_checker",
    "get_logger",
    "get_service_registry",
]
