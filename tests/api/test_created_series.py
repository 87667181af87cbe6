"""A scrape carries no `_created` samples, and both formats stay valid."""

from __future__ import annotations

import subprocess

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.support.tools import require_tool

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def test_no_created_series_in_either_format(sidecar):
    await sidecar.post("/api/health/services", json={"service": "up-svc"})
    await sidecar.post("/api/health/services", json={"service": "down-svc"})
    records = {"records": [{"service": "engine", "operation": "fill", "latency_ms": 12,
                            "success": False, "trace_id": "t-1"}]}
    assert (await sidecar.post("/api/health/latency", json=records)).status == 200
    text = await (await sidecar.get("/metrics")).text()
    # Counters, histograms and the latency families are all there, without `_created`.
    assert "usdcop_service_probe_failures_total{" in text
    assert 'usdcop_operation_errors_total{operation="fill",service="engine"} 1.0' in text
    assert "usdcop_http_request_duration_seconds_bucket{" in text
    assert "_created" not in text
    promtool = require_tool("promtool")
    out = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert out.returncode == 0 and not out.stdout and not out.stderr, out.stdout + out.stderr

    om = await (await sidecar.get("/metrics", headers={"Accept": OPENMETRICS})).text()
    assert "_created" not in om
    families = {f.name: f for f in text_string_to_metric_families(om)}
    assert families["usdcop_operation_errors"].samples[0].value == 1.0
    exemplars = [s.exemplar for s in families["usdcop_operation_latency_seconds"].samples
                 if s.exemplar is not None]
    assert [e.labels for e in exemplars] == [{"trace_id": "t-1"}]
