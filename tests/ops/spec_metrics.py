"""The metric names and labels of SPEC section 6: what rules and dashboards may name."""

from __future__ import annotations

# Every metric family in the contract, with the labels it carries (besides the `job` and
# `instance` that Prometheus adds). A name a rule or dashboard uses that is not here is a
# typo or an invented metric, and fails the tests.
GAUGES: dict[str, frozenset[str]] = {
    "usdcop_build_info": frozenset({"version", "python", "loop"}),
    "usdcop_service_up": frozenset({"service"}),
    "usdcop_service_status": frozenset({"service", "status"}),
    "usdcop_service_probe_phase_seconds": frozenset({"service", "phase"}),
    "usdcop_service_last_check_timestamp_seconds": frozenset({"service"}),
    "usdcop_service_probe_interval_seconds": frozenset({"service"}),
    "usdcop_service_probe_timeout_seconds": frozenset({"service"}),
    "usdcop_service_http_status_code": frozenset({"service"}),
    "usdcop_service_tls_cert_expiry_timestamp_seconds": frozenset({"service"}),
    "usdcop_service_reported_uptime_seconds": frozenset({"service"}),
    "usdcop_service_reported_requests_per_second": frozenset({"service"}),
    "usdcop_service_reported_error_ratio": frozenset({"service"}),
    "usdcop_service_reported_memory_bytes": frozenset({"service"}),
    "usdcop_overall_status": frozenset({"status"}),
    "usdcop_signal_confidence": frozenset({"symbol"}),
    "usdcop_signal_price": frozenset({"symbol"}),
    "usdcop_signal_timestamp_seconds": frozenset({"symbol"}),
    "usdcop_signal_execution_latency_seconds": frozenset({"symbol"}),
    "usdcop_signal_action": frozenset({"symbol", "action"}),
    "usdcop_signal_history_length": frozenset({"symbol"}),
    "usdcop_pnl": frozenset(),
    "usdcop_win_ratio": frozenset(),
    "usdcop_sharpe_ratio": frozenset(),
    "usdcop_max_drawdown_ratio": frozenset(),
    "usdcop_trades": frozenset(),
    "usdcop_active_positions": frozenset(),
    "usdcop_portfolio_value": frozenset(),
    "usdcop_financial_metrics_timestamp_seconds": frozenset(),
    "usdcop_position_quantity": frozenset({"symbol"}),
    "usdcop_position_entry_price": frozenset({"symbol"}),
    "usdcop_position_unrealized_pnl": frozenset({"symbol"}),
    "usdcop_position_opened_timestamp_seconds": frozenset({"symbol"}),
    "usdcop_custom_metric": frozenset({"name"}),
    "usdcop_redis_up": frozenset(),
    "usdcop_mirror_last_success_timestamp_seconds": frozenset(),
    "usdcop_cache_entries": frozenset({"cache"}),
    "usdcop_audit_default_partition_rows": frozenset(),
    "usdcop_audit_spool_events": frozenset(),
    "usdcop_audit_spool_bytes": frozenset(),
    "usdcop_audit_spool_oldest_age_seconds": frozenset(),
    "usdcop_audit_head_sequence": frozenset(),
    "usdcop_audit_last_verify_timestamp_seconds": frozenset(),
    "usdcop_audit_last_verify_ok": frozenset(),
    "usdcop_audit_last_checkpoint_timestamp_seconds": frozenset(),
    "usdcop_postgres_up": frozenset(),
    "usdcop_config_last_reload_successful": frozenset(),
    "usdcop_config_last_reload_success_timestamp_seconds": frozenset(),
    # Desk-aware monitoring (issue 9; README "Desk" section extends SPEC section 6).
    "usdcop_market_open": frozenset(),
    "usdcop_market_next_open_timestamp_seconds": frozenset(),
    "usdcop_market_next_close_timestamp_seconds": frozenset(),
    "usdcop_signal_age_seconds": frozenset({"symbol"}),
    "usdcop_signal_overdue": frozenset({"symbol"}),
    "usdcop_financial_metrics_overdue": frozenset(),
    "usdcop_trading_halted": frozenset({"reason"}),
    "usdcop_trading_halted_timestamp_seconds": frozenset(),
    "usdcop_risk_limit_utilization": frozenset({"limit"}),
    "usdcop_risk_limit_threshold": frozenset({"limit"}),
    "usdcop_session_pnl": frozenset(),
    "usdcop_position_mismatch": frozenset({"symbol"}),
    "usdcop_orphan_trades": frozenset(),
    "usdcop_stale_positions": frozenset(),
    "usdcop_reconciliation_last_success_timestamp_seconds": frozenset(),
    "usdcop_service_clock_skew_seconds": frozenset({"service"}),
    "usdcop_clock_tolerance_seconds": frozenset(),
    "usdcop_audit_max_future_skew_seconds": frozenset(),
}

COUNTERS: dict[str, frozenset[str]] = {
    "usdcop_service_probes_total": frozenset({"service", "result"}),
    "usdcop_service_probe_failures_total": frozenset({"service", "reason"}),
    "usdcop_probe_skipped_total": frozenset({"service"}),
    "usdcop_operations_expired_total": frozenset(),
    "usdcop_forwarder_dropped_total": frozenset(),
    "usdcop_operation_errors_total": frozenset({"service", "operation"}),
    "usdcop_latency_pairs_rejected_total": frozenset(),
    "usdcop_mirror_errors_total": frozenset({"key_kind", "reason"}),
    "usdcop_mirror_overflow_total": frozenset({"kind"}),
    "usdcop_cache_requests_total": frozenset({"cache", "result"}),
    "usdcop_cache_evictions_total": frozenset({"cache", "reason"}),
    "usdcop_audit_events_total": frozenset({"event_type", "outcome"}),
    "usdcop_audit_write_failures_total": frozenset({"reason"}),
    "usdcop_audit_dead_letter_total": frozenset(),
    "usdcop_audit_spool_quarantined_segments_total": frozenset(),
    "usdcop_http_requests_total": frozenset({"route", "method", "code"}),
    "usdcop_limit_rejections_total": frozenset({"limit"}),
    "usdcop_risk_limit_breaches_total": frozenset({"limit"}),
    "usdcop_reconciliation_runs_total": frozenset({"result"}),
    "usdcop_desk_audit_failures_total": frozenset({"event_type"}),
}

HISTOGRAMS: dict[str, frozenset[str]] = {
    "usdcop_service_probe_duration_seconds": frozenset({"service"}),
    "usdcop_probe_schedule_lag_seconds": frozenset(),
    "usdcop_operation_latency_seconds": frozenset({"service", "operation"}),
    "usdcop_mirror_duration_seconds": frozenset(),
    "usdcop_audit_write_duration_seconds": frozenset(),
    "usdcop_http_request_duration_seconds": frozenset({"route", "method", "code"}),
}

# usdcop_service_info carries the service's configured `labels` (team, tier, ...) too.
OPEN_LABELS = {"usdcop_service_info": frozenset({"service", "type"})}

# Series Prometheus makes itself.
PROMETHEUS_OWN: dict[str, frozenset[str] | None] = {
    "up": frozenset(),
    "ALERTS": None,  # any label of any alert
}

TARGET_LABELS = frozenset({"job", "instance"})


def series_labels() -> dict[str, frozenset[str] | None]:
    """Every series name a query may select, with its labels (None: any label)."""
    out: dict[str, frozenset[str] | None] = {}
    for name, labels in {**GAUGES, **COUNTERS}.items():
        out[name] = labels | TARGET_LABELS
    for name, labels in HISTOGRAMS.items():
        out[name + "_bucket"] = labels | TARGET_LABELS | {"le"}
        out[name + "_sum"] = labels | TARGET_LABELS
        out[name + "_count"] = labels | TARGET_LABELS
    for name in OPEN_LABELS:
        out[name] = None
    for name, labels in PROMETHEUS_OWN.items():
        out[name] = None if labels is None else labels | TARGET_LABELS
    return out
