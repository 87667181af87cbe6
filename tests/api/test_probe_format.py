"""GET /probe writes its numbers as prometheus-client writes the same values on /metrics."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from exporter.api.probe import render_probe
from exporter.health.result import ProbeResult

_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')

RESULTS = {
    "http": ProbeResult(
        success=True, duration_s=0.012345678, http_status=200,
        phases={"resolve": 0.0001, "connect": 0.00025, "tls": 0.003, "processing": 0.0041,
                "transfer": 1.5e-05},
        tls_expiry=1_767_225_600.0,
    ),
    "tls": ProbeResult(
        success=True, duration_s=2.0, phases={"resolve": 0.5, "connect": 1e-07, "tls": 12.0},
        tls_expiry=4_102_444_800.5, facts={"tls_version": "TLS 1.3"},
    ),
    "dns": ProbeResult(
        success=False, duration_s=1234567.0, reason="timeout",
        phases={"resolve": 0.25, "connect": 0.0, "query": 3.0},
        facts={"answer_rrs": 2, "authority_rrs": 0, "additional_rrs": 1, "serial": 2024010101},
    ),
}


def _client_line(name: str, labels: str | None, value: float) -> str:
    """The sample line prometheus-client writes for a gauge `name{labels}` set to `value`."""
    registry = CollectorRegistry()
    pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels or ""))
    gauge = Gauge(name, "doc", list(pairs), registry=registry)
    (gauge.labels(**pairs) if pairs else gauge).set(value)
    text = generate_latest(registry).decode()
    return next(line for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize("kind", sorted(RESULTS))
def test_probe_numbers_equal_prometheus_clients(kind):
    text = render_probe("svc", RESULTS[kind], "healthy", kind)
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(samples) >= 5
    for line in samples:
        match = _SAMPLE.match(line)
        assert match, line
        value = float(match["value"])
        assert line == _client_line(match["name"], match["labels"], value)
