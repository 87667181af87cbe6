"""The desk's counters, created on the registry they are given (never at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

LIMITS = ("max_drawdown", "daily_loss", "position_size", "open_positions", "win_ratio")
RUN_RESULTS = ("success", "skipped", "failed")
DESK_EVENTS = ("TRADING_HALTED", "TRADING_RESUMED", "RISK_LIMIT_BREACHED")


class DeskMetrics:
    """Breach events written, reconciliation runs, audit events the desk could not record."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.breaches = Counter(
            "usdcop_risk_limit_breaches", "RISK_LIMIT_BREACHED events written, by limit.",
            ["limit"], registry=registry,
        )
        self.reconciliations = Counter(
            "usdcop_reconciliation_runs", "Reconciliation runs by result (skipped: audit spool "
            "not drained, so the trail is incomplete).", ["result"], registry=registry,
        )
        self.audit_failures = Counter(
            "usdcop_desk_audit_failures", "Desk audit events that could not be recorded.",
            ["event_type"], registry=registry,
        )
        for limit in LIMITS:
            self.breaches.labels(limit)
        for result in RUN_RESULTS:
            self.reconciliations.labels(result)
        for event_type in DESK_EVENTS:
            self.audit_failures.labels(event_type)
