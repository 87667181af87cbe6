"""Service metrics built at scrape time from the checker's in-memory state (no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .result import PHASES, REASONS
from .state import PROBE_BUCKETS, STATUSES, overall_status

if TYPE_CHECKING:
    from .checker import HealthChecker

_REPORTED = (
    ("uptime", "usdcop_service_reported_uptime_seconds", "Uptime the service reports.", 1.0),
    ("requests_per_minute", "usdcop_service_reported_requests_per_second",
     "Request rate the service reports.", 1 / 60.0),
    ("error_rate", "usdcop_service_reported_error_ratio", "Error ratio the service reports.", 1.0),
    ("memory_usage_mb", "usdcop_service_reported_memory_bytes",
     "Memory the service reports using.", float(2**20)),
)
_BOUNDS = [repr(float(b)) if b != int(b) else f"{b:.1f}" for b in PROBE_BUCKETS] + ["+Inf"]


class ServiceCollector(Collector):
    """Exports every service of a HealthChecker; a service gone from it loses its series."""

    def __init__(self, checker: HealthChecker) -> None:
        self.checker = checker

    def describe(self) -> list[Metric]:
        return []  # families are dynamic; avoid a collect() at registration time

    def collect(self) -> Iterator[Metric]:
        states = list(self.checker.states.values())
        label_names = sorted({k for s in states for k, _ in s.config.labels})
        info = GaugeMetricFamily(
            "usdcop_service_info", "Static facts of a configured service.",
            labels=["service", "type", *label_names],
        )
        status = GaugeMetricFamily(
            "usdcop_service_status", "Thresholded state of a service (one-hot).",
            labels=["service", "status"],
        )
        up = GaugeMetricFamily("usdcop_service_up", "Whether the last probe succeeded.", labels=["service"])
        duration = HistogramMetricFamily(
            "usdcop_service_probe_duration_seconds", "Duration of probes.", labels=["service"]
        )
        phases = GaugeMetricFamily(
            "usdcop_service_probe_phase_seconds",
            "Phases of the last HTTP probe (tls is reported inside connect when not separable).",
            labels=["service", "phase"],
        )
        probes = CounterMetricFamily(
            "usdcop_service_probes", "Probes by result.", labels=["service", "result"]
        )
        failures = CounterMetricFamily(
            "usdcop_service_probe_failures", "Failed probes by reason.", labels=["service", "reason"]
        )
        last_check = GaugeMetricFamily(
            "usdcop_service_last_check_timestamp_seconds", "When the last probe finished.",
            labels=["service"],
        )
        interval = GaugeMetricFamily(
            "usdcop_service_probe_interval_seconds", "Configured probe interval.", labels=["service"]
        )
        timeout = GaugeMetricFamily(
            "usdcop_service_probe_timeout_seconds", "Configured probe timeout.", labels=["service"]
        )
        http_status = GaugeMetricFamily(
            "usdcop_service_http_status_code", "HTTP status of the last probe.", labels=["service"]
        )
        cert = GaugeMetricFamily(
            "usdcop_service_tls_cert_expiry_timestamp_seconds",
            "Expiry of the leaf certificate the service presented.", labels=["service"],
        )
        skipped = CounterMetricFamily(
            "usdcop_probe_skipped", "Ticks skipped because the last probe still ran.",
            labels=["service"],
        )
        reported = {
            key: (GaugeMetricFamily(name, doc, labels=["service"]), scale)
            for key, name, doc, scale in _REPORTED
        }
        for state in states:
            cfg = state.config
            name = cfg.name
            labels = dict(cfg.labels)
            info.add_metric([name, cfg.type, *(labels.get(k, "") for k in label_names)], 1)
            for st in STATUSES:
                status.add_metric([name, st], 1 if state.status == st else 0)
            interval.add_metric([name], cfg.interval)
            timeout.add_metric([name], cfg.timeout)
            for result_name, count in state.probes.items():
                probes.add_metric([name, result_name], count)
            for reason in REASONS:
                failures.add_metric([name, reason], state.failures[reason])
            skipped.add_metric([name], state.skipped)
            result = state.last_result
            if result is None:
                continue
            up.add_metric([name], 1 if result.success else 0)
            cumulative, buckets = 0, []
            for bound, count in zip(_BOUNDS, state.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric([name], buckets, state.duration_sum)
            if state.last_check is not None:
                last_check.add_metric([name], state.last_check)
            for phase in PHASES:
                if phase in result.phases:
                    phases.add_metric([name, phase], result.phases[phase])
            if result.http_status is not None:
                http_status.add_metric([name], result.http_status)
            if result.tls_expiry is not None:
                cert.add_metric([name], result.tls_expiry)
            for key, (family, scale) in reported.items():
                value = result.details.get(key)
                if value is not None:
                    family.add_metric([name], value * scale)
        overall = GaugeMetricFamily(
            "usdcop_overall_status", "Overall status of this sidecar's services (one-hot).",
            labels=["status"],
        )
        current = overall_status(states)
        for st in ("healthy", "degraded", "unhealthy"):
            overall.add_metric([st], 1 if current == st else 0)
        yield from (info, status, up, duration, phases, probes, failures, last_check, interval,
                    timeout, http_status, cert, skipped)
        yield from (family for family, _ in reported.values())
        yield overall
