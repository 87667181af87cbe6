"""Latency records and timed operations: LatencyMonitor, PerformanceLogger and their forwarder."""

from .forwarder import Forwarder
from .guard import InvalidNameError, PairGuard, PairLimitError
from .library import LatencyLibrary
from .metrics import LatencyMetrics
from .monitor import LatencyMonitor
from .performance import Measurement, PerformanceLogger
from .record import LatencyRecord

__all__ = [
    "Forwarder",
    "InvalidNameError",
    "LatencyLibrary",
    "LatencyMetrics",
    "LatencyMonitor",
    "LatencyRecord",
    "Measurement",
    "PairGuard",
    "PairLimitError",
    "PerformanceLogger",
]
