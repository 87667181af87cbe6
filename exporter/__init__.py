"""usdcop-exporter: observability sidecar and library for the USD/COP trading stack."""

__version__ = "0.1.0"

from .audit import (  # noqa: E402
    AuditConflict,
    AuditError,
    AuditLogger,
    AuditUnavailable,
    AuditValidationError,
)
from .cache import MetricsCache, RedisClient, SignalCache  # noqa: E402
from .defaults import (  # noqa: E402
    get_audit_logger,
    get_health_checker,
    get_latency_monitor,
    get_logger,
    get_metrics_cache,
    get_performance_logger,
    get_service_registry,
    get_signal_cache,
)
from .desk.calendar import TradingCalendar  # noqa: E402
from .desk.halt import HALT_REASONS  # noqa: E402
from .health.checker import HealthChecker  # noqa: E402
from .health.push_client import PushError, report_push  # noqa: E402
from .health.registry import ServiceRegistry  # noqa: E402
from .latency import LatencyMonitor, PerformanceLogger  # noqa: E402
from .log import StructuredLogger  # noqa: E402

__all__ = [
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
    "get_health_checker",
    "get_logger",
    "get_service_registry",
]
