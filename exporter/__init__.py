"""usdcop-exporter: observability sidecar and library for the USD/COP trading stack."""

__version__ = "0.1.0"

from .defaults import get_health_checker, get_logger, get_service_registry  # noqa: E402
from .health.checker import HealthChecker  # noqa: E402
from .health.registry import ServiceRegistry  # noqa: E402
from .log import StructuredLogger  # noqa: E402

__all__ = [
    "HealthChecker",
    "ServiceRegistry",
    "StructuredLogger",
    "get_health_checker",
    "get_logger",
    "get_service_registry",
]
