"""Service metrics from the checker's in-memory state (no I/O), in two renderings.

Generic consumers (prometheus_client's encoders, `registry.get_sample_value`) get ordinary
metric families built from the state when they read `samples`. GET /metrics takes the fast
path (exporter.exposition): every service keeps its sample lines pre-rendered, one string
per family, re-rendered only when its state changed since the last scrape, and a scrape
joins them. Both renderings give the same bytes.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..samples import format_sample
from .result import PROBE_PHASES, REASONS
from .state import OVERALL_STATUSES, PROBE_BUCKETS, STATUSES, ServiceState, overall_status

if TYPE_CHECKING:
    from .checker import HealthChecker, HealthEvent

_REPORTED = (
    ("uptime", "usdcop_service_reported_uptime_seconds", "Uptime the service reports.", 1.0),
    ("requests_per_minute", "usdcop_service_reported_requests_per_second",
     "Request rate the service reports.", 1 / 60.0),
    ("error_rate", "usdcop_service_reported_error_ratio", "Error ratio the service reports.", 1.0),
    ("memory_usage_mb", "usdcop_service_reported_memory_bytes",
     "Memory the service reports using.", float(2**20)),
)
_CRITICAL = {True: "true", False: "false"}  # usdcop_service_info's `critical` label
_BOUNDS = [repr(float(b)) if b != int(b) else f"{b:.1f}" for b in PROBE_BUCKETS] + ["+Inf"]

# (name, type, help), in the order both renderings yield them.
FAMILIES = (
    ("usdcop_service_info", "gauge",
     "Static facts of a configured service (type, critical, its labels)."),
    ("usdcop_service_status", "gauge", "Thresholded state of a service (one-hot)."),
    ("usdcop_service_up", "gauge", "Whether the last probe succeeded."),
    ("usdcop_service_probe_duration_seconds", "histogram", "Duration of probes."),
    ("usdcop_service_probe_phase_seconds", "gauge",
     "Phases of the last probe (http: tls is reported inside connect when not separable)."),
    ("usdcop_service_probes", "counter", "Probes by result."),
    ("usdcop_service_probe_failures", "counter", "Failed probes by reason."),
    ("usdcop_service_last_check_timestamp_seconds", "gauge", "When the last probe finished."),
    ("usdcop_service_probe_interval_seconds", "gauge", "Configured probe interval."),
    ("usdcop_service_probe_timeout_seconds", "gauge", "Configured probe timeout."),
    ("usdcop_service_http_status_code", "gauge", "HTTP status of the last probe."),
    ("usdcop_service_tls_cert_expiry_timestamp_seconds", "gauge",
     "Expiry of the leaf certificate the service presented."),
    ("usdcop_probe_skipped", "counter", "Ticks skipped because the last probe still ran."),
    *((name, "gauge", doc) for _key, name, doc, _scale in _REPORTED),
    ("usdcop_service_clock_skew_seconds", "gauge",
     "The service's clock minus the sidecar's, from the last HTTP answer (Date, body time)."),
    ("usdcop_probe_icmp_loss_ratio", "gauge",
     "Share of the last ICMP probe's echo requests left unanswered."),
    ("usdcop_overall_status", "gauge", "Overall status of this sidecar's services (one-hot)."),
)
CHUNK = 256  # services joined and encoded between two looks at the clock in refresh()
_PER_SERVICE = len(FAMILIES) - 1  # every family but the overall status has a part per service
(_INFO, _STATUS, _UP, _DURATION, _PHASES, _PROBES, _FAILURES, _LAST_CHECK, _INTERVAL,
 _TIMEOUT, _HTTP_STATUS, _CERT, _SKIPPED) = range(13)
_REPORTED_AT = 13
_SKEW = _REPORTED_AT + len(_REPORTED)
_LOSS = _SKEW + 1


def _pct(text: str) -> str:
    """`text` safe inside a %-format template."""
    return text.replace("%", "%%")


def _esc(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Block:
    """One service's sample lines, one string per family, and what they were rendered from.

    Every line's `name{labels} ` prefix is built once per configuration, so re-rendering
    after a probe only formats numbers.
    """

    __slots__ = ("state", "config", "label_names", "version", "skipped", "parts", "_svc",
                 "_status", "_up", "_buckets", "_count", "_sum", "_phases", "_probes",
                 "_failures", "_no_failures", "_last_check", "_http_status", "_cert", "_reported",
                 "_skew", "_loss", "_duration_tmpl", "_probes_tmpl", "_details")

    def __init__(self, state: ServiceState, label_names: tuple[str, ...]) -> None:
        cfg = state.config
        self.state, self.config, self.label_names = state, cfg, label_names
        svc = self._svc = f'service="{_esc(cfg.name)}"'
        labels = {**dict(cfg.labels), "during": cfg.during}  # `during` only when in label_names
        pairs = sorted([("critical", _CRITICAL[cfg.critical]), ("service", cfg.name),
                        ("type", cfg.type), *((k, labels.get(k, "")) for k in label_names)])
        info = ",".join(f'{k}="{_esc(v)}"' for k, v in pairs)
        # The one-hot families take a few fixed texts: render them all now.
        self._status = {
            current: "".join(f'usdcop_service_status{{{svc},status="{st}"}} '
                             f'{"1.0" if st == current else "0.0"}\n' for st in STATUSES)
            for current in STATUSES
        }
        self._up = (f"usdcop_service_up{{{svc}}} 0.0\n", f"usdcop_service_up{{{svc}}} 1.0\n")
        self._buckets = tuple(
            f'usdcop_service_probe_duration_seconds_bucket{{le="{b}",{svc}}} ' for b in _BOUNDS
        )
        self._count = f"usdcop_service_probe_duration_seconds_count{{{svc}}} "
        self._sum = f"usdcop_service_probe_duration_seconds_sum{{{svc}}} "
        self._phases = {p: f'usdcop_service_probe_phase_seconds{{phase="{p}",{svc}}} ' for p in PROBE_PHASES}
        self._probes = {r: f'usdcop_service_probes_total{{result="{r}",{svc}}} ' for r in state.probes}
        self._failures = tuple(
            (r, f'usdcop_service_probe_failures_total{{reason="{r}",{svc}}} ') for r in REASONS
        )
        self._no_failures = "".join(f"{prefix}0.0\n" for _r, prefix in self._failures)
        self._last_check = f"usdcop_service_last_check_timestamp_seconds{{{svc}}} "
        self._http_status = f"usdcop_service_http_status_code{{{svc}}} "
        self._cert = f"usdcop_service_tls_cert_expiry_timestamp_seconds{{{svc}}} "
        self._reported = tuple((key, f"{name}{{{svc}}} ", scale) for key, name, _doc, scale in _REPORTED)
        self._skew = f"usdcop_service_clock_skew_seconds{{{svc}}} "
        self._loss = f"usdcop_probe_icmp_loss_ratio{{{svc}}} "
        # Counts below a million print as "%d.0" (Go switches to exponents above): the
        # histogram and the probe counters are then one %-format each.
        self._duration_tmpl = "".join(
            [f"{_pct(p)}%d.0\n" for p in (*self._buckets, self._count)]) + f"{_pct(self._sum)}%s\n"
        self._probes_tmpl = "".join(f"{_pct(p)}%d.0\n" for p in self._probes.values())
        self._details: dict | None = None
        self.parts = [""] * _PER_SERVICE
        self.parts[_INFO] = f"usdcop_service_info{{{info}}} 1.0\n"
        self.parts[_INTERVAL] = f"usdcop_service_probe_interval_seconds{{{svc}}} {format_sample(cfg.interval)}\n"
        self.parts[_TIMEOUT] = f"usdcop_service_probe_timeout_seconds{{{svc}}} {format_sample(cfg.timeout)}\n"
        self.render_state()
        self.render_skipped()

    def fresh(self, state: ServiceState, label_names: tuple[str, ...]) -> bool:
        """True when the static lines still hold (same state object, config and label set)."""
        return state is self.state and state.config is self.config and label_names == self.label_names

    def render_skipped(self) -> None:
        """The skipped-ticks line, which changes without a probe result."""
        self.skipped = self.state.skipped
        self.parts[_SKIPPED] = f"usdcop_probe_skipped_total{{{self._svc}}} {format_sample(self.skipped)}\n"

    def render_state(self) -> None:
        """Every line that depends on the probe results."""
        state, parts = self.state, self.parts
        self.version = state.version
        parts[_STATUS] = self._status[state.status]
        probes = state.probes
        counts = tuple(probes.values())
        if max(counts) < 1_000_000:
            parts[_PROBES] = self._probes_tmpl % counts
        else:
            prefixes = self._probes
            parts[_PROBES] = "".join([f"{prefixes[r]}{format_sample(n)}\n" for r, n in probes.items()])
        if probes["failure"]:
            failures = state.failures
            parts[_FAILURES] = "".join([f"{p}{format_sample(failures[r])}\n" for r, p in self._failures])
        else:
            parts[_FAILURES] = self._no_failures
        result = state.last_result
        if result is None:
            for index in (_UP, _DURATION, _PHASES, _LAST_CHECK, _HTTP_STATUS, _CERT, _SKEW, _LOSS):
                parts[index] = ""
            for index in range(_REPORTED_AT, _SKEW):
                parts[index] = ""
            self._details = None
            return
        parts[_UP] = self._up[1 if result.success else 0]
        cumulative = list(accumulate(state.buckets))
        total = cumulative[-1]
        if total < 1_000_000:
            parts[_DURATION] = self._duration_tmpl % (*cumulative, total, format_sample(state.duration_sum))
        else:
            lines = [f"{prefix}{format_sample(n)}\n" for prefix, n in zip(self._buckets, cumulative, strict=True)]
            lines.append(f"{self._count}{format_sample(total)}\n{self._sum}{format_sample(state.duration_sum)}\n")
            parts[_DURATION] = "".join(lines)
        phases, prefixes = result.phases, self._phases
        parts[_PHASES] = "".join([f"{prefixes[p]}{format_sample(phases[p])}\n" for p in PROBE_PHASES if p in phases])
        last_check, status, expiry = state.last_check, result.http_status, result.tls_expiry
        parts[_LAST_CHECK] = f"{self._last_check}{format_sample(last_check)}\n" if last_check is not None else ""
        parts[_HTTP_STATUS] = f"{self._http_status}{format_sample(status)}\n" if status is not None else ""
        parts[_CERT] = f"{self._cert}{format_sample(expiry)}\n" if expiry is not None else ""
        details = result.details
        if details != self._details:  # services tend to report the same figures again
            self._details = details
            for index, (key, prefix, scale) in enumerate(self._reported, _REPORTED_AT):
                value = details.get(key)
                parts[index] = f"{prefix}{format_sample(value * scale)}\n" if value is not None else ""
        skew = result.clock_skew_s
        parts[_SKEW] = f"{self._skew}{format_sample(skew)}\n" if skew is not None else ""
        loss = result.facts.get("loss_ratio") if result.facts else None
        parts[_LOSS] = f"{self._loss}{format_sample(loss)}\n" if loss is not None else ""


class _Scrape:
    """One collect(): its families share one build of the samples, or one snapshot of the
    lines (families joined one at a time, so a scrape can yield between them)."""

    __slots__ = ("collector", "_families", "_columns", "prepared", "__weakref__")

    def __init__(self, collector: ServiceCollector) -> None:
        self.collector = collector
        self._families: list[Metric] | None = None
        self._columns: list[tuple[str, ...]] | None = None
        # every family's lines as encoded chunks of services, when the collector's
        # refresh() prepared them for this scrape
        self.prepared: list[list[bytes]] | None = None

    def families(self) -> list[Metric]:
        if self._families is None:
            self._families = self.collector.build_families()
        return self._families

    def text(self, index: int) -> str:
        if self._columns is None:
            self._columns = self.collector.snapshot()
        return "".join(self._columns[index])

    def pieces(self, index: int) -> list[bytes]:
        if self.prepared is not None:
            return self.prepared[index]
        return [self.text(index).encode("utf-8")]


class ServiceFamily(Metric):
    """A family whose samples are built on first read; it also carries its pre-rendered lines.

    `exposition_text()` gives the sample lines as Prometheus text (identical in OpenMetrics:
    no exemplars, no created series); `exposition_owner.refresh()` prepares them in slices.
    """

    def __init__(self, scrape: _Scrape, index: int) -> None:
        # Metric.__init__ would assign `samples`, which is computed here.
        self.name, self.type, self.documentation = FAMILIES[index]
        self.unit = ""
        self._scrape = scrape
        self._index = index

    @property
    def samples(self) -> list:  # type: ignore[override]
        """The samples, built from the state of this scrape."""
        return self._scrape.families()[self._index].samples

    @property
    def exposition_owner(self) -> ServiceCollector:
        """The collector that can refresh the pre-rendered lines ahead of a scrape."""
        return self._scrape.collector

    def exposition_text(self) -> str:
        """This family's sample lines, pre-rendered."""
        return self._scrape.text(self._index)

    def exposition_pieces(self) -> list[bytes]:
        """The same lines as UTF-8, in pieces (chunks of services when the owner's
        refresh() prepared them, else one)."""
        return self._scrape.pieces(self._index)


class ServiceCollector(Collector):
    """Exports every service of a HealthChecker; a service gone from it loses its series."""

    def __init__(self, checker: HealthChecker) -> None:
        self.checker = checker
        self._blocks: dict[str, _Block] = {}
        # the last collect()'s scrape, for refresh() to prepare; weak, so a scrape (and the
        # samples a generic consumer built from it) goes when its consumer is done with it
        self._latest: weakref.ref[_Scrape] | None = None
        # A service's lines are re-rendered as its probe result lands, so a scrape after
        # every service changed joins ready lines instead of formatting them all at once.
        checker.add_listener(self._render_probed)

    def _render_probed(self, event: HealthEvent) -> None:
        """Re-render the probed service's block now (once a scrape has built it)."""
        name = event.service.name
        block = self._blocks.get(name)
        if block is None:
            return
        state = self.checker.states.get(name)
        if block.state is state and block.version != state.version:
            block.render_state()

    def describe(self) -> list[Metric]:
        return []  # families are dynamic; avoid a collect() at registration time

    def collect(self) -> Iterator[Metric]:
        scrape = _Scrape(self)
        self._latest = weakref.ref(scrape)
        return iter([ServiceFamily(scrape, index) for index in range(len(FAMILIES))])

    # -- the fast path -------------------------------------------------------------

    def _label_names(self, states: list[ServiceState]) -> tuple[str, ...]:
        names = {k for s in states for k, _ in s.config.labels}
        if any(s.config.during != "always" for s in states):
            names.add("during")  # once any service sets it, so configs without a desk keep their series
        return tuple(sorted(names))

    def _block(self, state: ServiceState, label_names: tuple[str, ...]) -> _Block:
        block = self._blocks.get(state.config.name)
        if block is None or not block.fresh(state, label_names):
            block = self._blocks[state.config.name] = _Block(state, label_names)
            return block
        if block.version != state.version:
            block.render_state()
        if block.skipped != state.skipped:
            block.render_skipped()
        return block

    async def refresh(self, slice_s: float = 0.001) -> None:
        """Re-render the blocks of services that changed, then join and encode the last
        collect()'s lines a chunk of services at a time, yielding to the loop between slices.

        Each service's lines in a chunk come from one moment; a result landing during a
        yield reaches the chunks not yet joined."""
        latest = self._latest
        scrape = latest() if latest is not None else None
        states = list(self.checker.states.values())
        label_names = self._label_names(states)
        began = time.perf_counter()
        for count, state in enumerate(states, 1):
            self._block(state, label_names)
            if count % 16 == 0 and time.perf_counter() - began > slice_s:
                await asyncio.sleep(0)
                began = time.perf_counter()
        if scrape is None or self._latest is not latest:
            return  # another collect() since: its own refresh prepares it
        prepared: list[list[bytes]] = [[] for _ in range(_PER_SERVICE)]
        for start in range(0, len(states), CHUNK):
            chunk = states[start:start + CHUNK]
            parts = [self._block(state, label_names).parts for state in chunk]
            for index, column in enumerate(zip(*parts, strict=True)):
                prepared[index].append("".join(column).encode("utf-8"))
            if time.perf_counter() - began > slice_s:
                await asyncio.sleep(0)
                began = time.perf_counter()
        prepared.append([self._overall(states).encode("utf-8")])
        self._forget_removed(states)
        scrape.prepared = prepared

    def snapshot(self) -> list[tuple[str, ...]]:
        """Every family's lines, service by service, as they are now (stale blocks
        re-rendered): one tuple per family, in FAMILIES order."""
        states = list(self.checker.states.values())
        label_names = self._label_names(states)
        blocks = [self._block(state, label_names).parts for state in states]
        self._forget_removed(states)
        columns = list(zip(*blocks, strict=True)) if blocks else [()] * _PER_SERVICE
        columns.append((self._overall(states),))
        return columns

    def _forget_removed(self, states: list[ServiceState]) -> None:
        if len(self._blocks) > len(states):  # services removed: forget their blocks
            self._blocks = {s.config.name: self._blocks[s.config.name] for s in states}

    @staticmethod
    def _overall(states: list[ServiceState]) -> str:
        current = overall_status(states)
        return "".join(
            f'usdcop_overall_status{{status="{st}"}} {"1.0" if st == current else "0.0"}\n'
            for st in OVERALL_STATUSES
        )

    # -- the generic path ----------------------------------------------------------

    def build_families(self) -> list[Metric]:
        """Ordinary metric families from the current state, in FAMILIES order."""
        states = list(self.checker.states.values())
        label_names = list(self._label_names(states))
        families: list[Metric] = []
        for index, (name, kind, doc) in enumerate(FAMILIES):
            labels = ["service"]
            if index == _INFO:
                labels = ["service", "type", "critical", *label_names]
            elif index == _STATUS:
                labels = ["service", "status"]
            elif index == _PHASES:
                labels = ["service", "phase"]
            elif index == _PROBES:
                labels = ["service", "result"]
            elif index == _FAILURES:
                labels = ["service", "reason"]
            elif index == len(FAMILIES) - 1:
                labels = ["status"]
            cls = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily,
                   "histogram": HistogramMetricFamily}[kind]
            families.append(cls(name, doc, labels=labels))
        (info, status, up, duration, phases, probes, failures, last_check, interval, timeout,
         http_status, cert, skipped) = families[:13]
        reported = families[_REPORTED_AT:_SKEW]
        for state in states:
            cfg = state.config
            name = cfg.name
            labels = {**dict(cfg.labels), "during": cfg.during}
            info.add_metric([name, cfg.type, _CRITICAL[cfg.critical],
                             *(labels.get(k, "") for k in label_names)], 1)
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
            for phase in PROBE_PHASES:
                if phase in result.phases:
                    phases.add_metric([name, phase], result.phases[phase])
            if result.http_status is not None:
                http_status.add_metric([name], result.http_status)
            if result.tls_expiry is not None:
                cert.add_metric([name], result.tls_expiry)
            for family, (key, _name, _doc, scale) in zip(reported, _REPORTED, strict=True):
                value = result.details.get(key)
                if value is not None:
                    family.add_metric([name], value * scale)
            if result.clock_skew_s is not None:
                families[_SKEW].add_metric([name], result.clock_skew_s)
            if result.facts.get("loss_ratio") is not None:
                families[_LOSS].add_metric([name], result.facts["loss_ratio"])
        current = overall_status(states)
        for st in OVERALL_STATUSES:
            families[-1].add_metric([st], 1 if current == st else 0)
        return families
