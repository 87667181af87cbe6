"""What one probe found: the facts the checker turns into state and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The closed set of failure reasons (usdcop_service_probe_failures_total{reason}).
REASONS = (
    "timeout",
    "connect",
    "dns",
    "tls",
    "status",
    "condition",
    "reported_unhealthy",
    "bad_body",
    "body_too_large",
    "handshake",  # websocket: no 101 Switching Protocols, or a wrong accept key
    "expect",  # websocket: no message matched `expect` (or the server closed first)
    "rcode",  # dns: an answer code outside valid_rcodes
    "answer",  # dns: no answer record matched expect_answer
    "unreachable",  # icmp: the network or host is unreachable
    "silence",  # push: no report within max_silence
    "other",
)

# HTTP phases, named as blackbox_exporter names them.
PHASES = ("resolve", "connect", "tls", "processing", "transfer")
# Every phase any prober reports (usdcop_service_probe_phase_seconds{phase}).
PROBE_PHASES = (*PHASES, "handshake", "first_message", "query", "rtt", "check")


@dataclass
class ConditionOutcome:
    """One condition and whether it held."""

    condition: str
    success: bool
    detail: str | None = None  # e.g. "missing field" or the value seen

    def as_dict(self) -> dict[str, Any]:
        """JSON form for metadata.probe.conditions."""
        return {"condition": self.condition, "success": self.success, "detail": self.detail}


@dataclass
class ProbeResult:
    """The outcome of one probe. Probers fill it; the checker decides state from it.

    `success` is False exactly when `reason` is set. `reported` is the status word the
    service itself gave, normalised to healthy/degraded/unhealthy (None: it said nothing
    that decides, e.g. Spring UNKNOWN or a plain-text body). A reported `unhealthy` is a
    failure with reason `reported_unhealthy`; a reported `degraded` is a success that the
    checker turns into state `degraded`.
    """

    success: bool
    duration_s: float
    reason: str | None = None
    message: str | None = None  # human detail of the failure; never a secret
    reported: str | None = None
    http_status: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    tls_expiry: float | None = None  # unix seconds, earliest expiry seen
    details: dict[str, float] = field(default_factory=dict)  # uptime, requests_per_minute, error_rate, memory_usage_mb
    reported_metadata: dict[str, Any] | None = None
    conditions: list[ConditionOutcome] = field(default_factory=list)
    body_format: str | None = None  # the format detected or configured
    extra: dict[str, Any] = field(default_factory=dict)  # prober-specific facts for metadata.probe
    clock_skew_s: float | None = None  # the service's clock minus ours (http: Date header, body time)
    # Prober-specific numbers for /probe's blackbox_exporter names (dns record counts, grpc
    # serving status, icmp loss, tls version ...); not part of the health format.
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, reason: str, duration_s: float, message: str | None = None, **kw: Any) -> ProbeResult:
        """A failed probe with one of REASONS."""
        assert reason in REASONS, reason
        return cls(success=False, duration_s=duration_s, reason=reason, message=message, **kw)

    def probe_metadata(self) -> dict[str, Any]:
        """The `metadata.probe` object of the health format."""
        out: dict[str, Any] = {"reason": self.reason}
        if self.message:
            out["message"] = self.message
        if self.http_status is not None:
            out["http_status"] = self.http_status
        if self.body_format:
            out["body_format"] = self.body_format
        if self.conditions:
            out["conditions"] = [c.as_dict() for c in self.conditions]
        out.update(self.extra)
        return out
