"""Per-service health state: thresholds, the health format, and the numbers metrics export."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..config.model import ServiceConfig
from .result import REASONS, ProbeResult

STATUSES = ("healthy", "degraded", "unhealthy", "unknown")
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DETAIL_KEYS = ("uptime", "requests_per_minute", "error_rate", "memory_usage_mb")


def iso_utc(ts: float) -> str:
    """Unix seconds as ISO-8601 UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class ServiceState:
    """Everything known about one service.

    The health checker owns it and changes it: through `apply` (a probe result), `checked`
    (a check that found nothing new), `skip` (a scheduled tick that found the last probe
    still running), and, on a reload that changed the service, by swapping `config` in.
    """

    config: ServiceConfig
    status: str = "unknown"
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_result: ProbeResult | None = None
    last_check: float | None = None  # unix seconds of the last result
    probes: dict[str, int] = field(default_factory=lambda: {"success": 0, "failure": 0})
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(PROBE_BUCKETS) + 1))
    duration_sum: float = 0.0
    skipped: int = 0
    health: dict[str, Any] | None = None  # cached health format of the last result
    version: int = 0  # rises with every applied result: /metrics re-renders a service's block

    def retarget(self, config: ServiceConfig) -> None:
        """Take a configuration that probes something else (another URL, address, type or
        query): what was seen of the old target says nothing of the new one, so the state
        is `unknown` again until a probe of the new target decides. Counters stay."""
        self.config = config
        self.status = "unknown"
        self.consecutive_failures = self.consecutive_successes = 0
        self.last_result = None
        self.last_check = None
        self.health = None
        self.version += 1

    def observed_status(self, result: ProbeResult) -> str:
        """What this one result says, before thresholds."""
        if not result.success:
            return "unhealthy"
        if result.reported == "degraded" or result.duration_s > self.config.degraded_latency:
            return "degraded"
        return "healthy"

    def apply(self, result: ProbeResult, now: float | None = None) -> tuple[str, str]:
        """Record a result, apply flap control; returns (old status, new status)."""
        now = time.time() if now is None else now
        old = self.status
        observed = self.observed_status(result)
        cfg = self.config
        if result.success:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            self.probes["success"] += 1
            if old != "unhealthy" or self.consecutive_successes >= cfg.success_threshold:
                self.status = observed
        else:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            self.probes["failure"] += 1
            self.failures[result.reason or "other"] += 1
            # Below the threshold the status stays what it was: `unknown` until a probe
            # succeeds or the threshold is met, since no probe has shown the service
            # healthy (usdcop_service_up and metadata.probe show the failure meanwhile).
            if self.consecutive_failures >= cfg.failure_threshold:
                self.status = "unhealthy"
        self.buckets[bisect.bisect_left(PROBE_BUCKETS, result.duration_s)] += 1
        self.duration_sum += result.duration_s
        self.last_result = result
        self.last_check = now
        self.health = None
        self.version += 1
        return old, self.status

    def checked(self, now: float) -> None:
        """A check that found nothing new (a push service's report still within
        max_silence): the last result stands, `last_check` says it was looked at now."""
        if self.last_result is None:
            return
        self.last_check = now
        self.health = None
        self.version += 1

    def skip(self) -> None:
        """Count a scheduled tick that found the last probe still running."""
        self.skipped += 1

    def health_format(self) -> dict[str, Any]:
        """The health format for this service (docs/api.md)."""
        if self.health is not None:
            return self.health
        result = self.last_result
        if result is None:
            return {
                "service": self.config.name,
                "status": self.status,
                "latency_ms": None,
                "last_check": None,
                "details": dict.fromkeys(DETAIL_KEYS),
                "metadata": {"probe": {"reason": None}, "reported": None},
            }
        details = {key: result.details.get(key) for key in DETAIL_KEYS}
        self.health = {
            "service": self.config.name,
            "status": self.status,
            "latency_ms": round(result.duration_s * 1000.0, 3),
            "last_check": iso_utc(self.last_check or time.time()),
            "details": details,
            "metadata": {"probe": result.probe_metadata(), "reported": result.reported_metadata},
        }
        return self.health


OVERALL_STATUSES = ("healthy", "degraded", "unhealthy", "unknown")


def overall_status(states: list[ServiceState]) -> str:
    """Overall: unknown while no service has a state (none configured, or all still
    unknown); else unhealthy if a critical service is; degraded if any is degraded or a
    non-critical one unhealthy; unknown services count as neither."""
    if all(state.status == "unknown" for state in states):
        return "unknown"
    overall = "healthy"
    for state in states:
        if state.status == "unhealthy":
            if state.config.critical:
                return "unhealthy"
            overall = "degraded"
        elif state.status == "degraded":
            overall = "degraded"
    return overall


def summary(states: list[ServiceState]) -> dict[str, int]:
    """Counts by status, plus total."""
    out = {"total": len(states), "healthy": 0, "degraded": 0, "unhealthy": 0, "unknown": 0}
    for state in states:
        out[state.status] += 1
    return out
