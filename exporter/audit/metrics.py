"""The audit trail's metrics (docs/metrics.md), created on the registry it is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .events import KNOWN_TYPES, metric_type

OUTCOMES = ("stored", "spooled", "duplicate", "conflict", "rejected")
FAILURE_REASONS = ("connection", "timeout", "rejected", "other")


@dataclass
class AuditState:
    """What the background tasks last saw; read by the collector (never does I/O)."""

    postgres_up: bool | None = None  # None: embedded SQLite, the series is absent
    head_sequence: int | None = None
    last_verify_ts: float | None = None
    last_verify_ok: bool | None = None
    last_checkpoint_ts: float | None = None
    last_checkpoint_sequence: int | None = None
    default_partition_rows: int | None = None
    spool: Any = None  # exporter.audit.spool.Spool, read for its in-memory counters


class AuditMetrics:
    """Counters and histograms updated by the writer; gauges from an AuditState snapshot."""

    def __init__(self, registry: CollectorRegistry, state: AuditState) -> None:
        self.state = state
        self.events = Counter("usdcop_audit_events", "Audit events by type and outcome.",
                              ["event_type", "outcome"], registry=registry)
        self.write_failures = Counter("usdcop_audit_write_failures",
                                      "Failed writes to the audit store.", ["reason"],
                                      registry=registry)
        self.dead_letter = Counter("usdcop_audit_dead_letter",
                                   "Spooled events the database refused for good.",
                                   registry=registry)
        self.quarantined = Counter("usdcop_audit_spool_quarantined_segments",
                                   "Damaged spool segments set aside.", registry=registry)
        self.write_duration = Histogram("usdcop_audit_write_duration_seconds",
                                        "Time of one batched write to the audit store.",
                                        registry=registry)
        for event_type in (*KNOWN_TYPES, "other"):
            for outcome in OUTCOMES:
                self.events.labels(event_type, outcome)
        for reason in FAILURE_REASONS:
            self.write_failures.labels(reason)
        registry.register(_StateCollector(state))

    def count(self, event_type: str, outcome: str, n: int = 1) -> None:
        """Count events of one outcome."""
        self.events.labels(metric_type(event_type), outcome).inc(n)


class _StateCollector(Collector):
    def __init__(self, state: AuditState) -> None:
        self.state = state

    def describe(self):
        return []

    def collect(self):
        s = self.state
        spool = s.spool
        yield _gauge("usdcop_audit_spool_events", "Events waiting in the spool.",
                     spool.pending if spool is not None else 0)
        yield _gauge("usdcop_audit_spool_bytes", "Bytes of spool segments on disk.",
                     spool.bytes if spool is not None else 0)
        yield _gauge("usdcop_audit_spool_oldest_age_seconds",
                     "Age of the oldest event waiting in the spool.",
                     spool.oldest_age() if spool is not None else 0)
        for name, doc, value in (
            ("usdcop_audit_head_sequence", "Newest sequence of the chain.", s.head_sequence),
            ("usdcop_audit_default_partition_rows", "Rows that fell into the default partition.",
             s.default_partition_rows),
            ("usdcop_audit_last_checkpoint_timestamp_seconds",
             "When the newest checkpoint was written.", s.last_checkpoint_ts),
            ("usdcop_audit_last_checkpoint_sequence",
             "The sequence the newest checkpoint covers.", s.last_checkpoint_sequence),
        ):
            if value is not None:
                yield _gauge(name, doc, value)
        if s.last_verify_ts is not None:
            yield _gauge("usdcop_audit_last_verify_timestamp_seconds",
                         "When the chain was last verified.", s.last_verify_ts)
            yield _gauge("usdcop_audit_last_verify_ok", "1 if the last verification passed.",
                         1 if s.last_verify_ok else 0)
        if s.postgres_up is not None:
            yield _gauge("usdcop_postgres_up", "1 while the audit Postgres answers.",
                         1 if s.postgres_up else 0)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], float(value))
    return family
