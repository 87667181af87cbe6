"""Push checks: reports arriving through POST /api/health/push count as probe results;
silence past max_silence turns the service unhealthy with reason `silence`."""

from __future__ import annotations

import asyncio

import pytest

from exporter.config.loader import load_config
from exporter.health.checker import HealthChecker
from exporter.health.registry import ServiceRegistry
from exporter.health.state import iso_utc
from tests.api.conftest import services_yaml

PUSH = """  - name: nightly-pipeline
    type: push
    max_silence: 26h
    failure_threshold: 1
"""


async def test_reports_count_as_probe_results(aiohttp_client, make_app, target):
    app, _ = make_app(services_yaml(target, PUSH))
    client = await aiohttp_client(app)
    resp = await client.post("/api/health/push", json={"service": "nightly-pipeline",
                                                       "status": "healthy", "latency_ms": 12.5,
                                                       "message": "run 118 done"})
    assert resp.status == 200
    health = await resp.json()
    assert (health["status"], health["latency_ms"]) == ("healthy", 12.5)
    assert health["metadata"]["probe"]["report"] == "run 118 done"
    resp = await client.post("/api/health/push", json={"service": "nightly-pipeline",
                                                       "status": "unhealthy",
                                                       "message": "load step failed"})
    health = await resp.json()
    assert health["status"] == "unhealthy"
    assert health["metadata"]["probe"] == {"reason": "reported_unhealthy",
                                           "message": "load step failed", "pushed": True}
    metrics = await (await client.get("/metrics")).text()
    assert 'usdcop_service_status{service="nightly-pipeline",status="unhealthy"} 1.0' in metrics
    assert ('usdcop_service_probe_failures_total{reason="reported_unhealthy",'
            'service="nightly-pipeline"} 1.0') in metrics
    assert 'usdcop_service_probes_total{result="success",service="nightly-pipeline"} 1.0' in metrics
    for _ in range(100):  # the audit hook writes in the background
        answer = await client.get("/api/audit/signals", params={"eventType": "SERVICE_STATUS_CHANGED"})
        changes = [e for e in (await answer.json())["events"]
                   if e["data"]["service"] == "nightly-pipeline"]
        if changes:
            break
        await asyncio.sleep(0.05)
    assert [(c["data"]["old_status"], c["data"]["new_status"], c["data"]["reason"])
            for c in changes] == [("healthy", "unhealthy", "reported_unhealthy")]


async def test_report_for_a_service_not_of_type_push_is_404(sidecar):
    resp = await sidecar.post("/api/health/push", json={"service": "up-svc"})
    assert resp.status == 404
    body = await resp.json()
    assert body["field"] == "service" and "not of type push" in body["detail"]
    assert (await (await sidecar.get("/api/health/services")).json())["summary"]["unknown"] == 2
    resp = await sidecar.post("/api/health/push", json={"service": "nope"})
    assert resp.status == 404


async def test_bad_reports_are_422_and_change_nothing(aiohttp_client, make_app, target):
    app, _ = make_app(services_yaml(target, PUSH))
    client = await aiohttp_client(app)
    for body, field in (({"service": "nightly-pipeline", "status": "fine"}, "status"),
                        ({"service": "nightly-pipeline", "latency_ms": -1}, "latency_ms"),
                        ({"service": "nightly-pipeline", "latency_ms": "5"}, "latency_ms"),
                        ({"service": "nightly-pipeline", "url": "http://x"}, "url"),
                        ({}, "service")):
        resp = await client.post("/api/health/push", json=body)
        assert resp.status == 422, body
        assert (await resp.json())["field"] == field
    overview = await (await client.get("/api/health/services")).json()
    assert overview["summary"]["unknown"] == 3


async def test_reporting_needs_write_level(aiohttp_client, make_app, target):
    app, _ = make_app(services_yaml(target, PUSH), EXPORTER_API_TOKEN="w-token")
    client = await aiohttp_client(app)
    body = {"json": {"service": "nightly-pipeline"}}
    assert (await client.post("/api/health/push", **body)).status == 401
    ok = await client.post("/api/health/push", headers={"Authorization": "Bearer w-token"}, **body)
    assert ok.status == 200


async def test_silence_past_max_silence_is_unhealthy(tmp_path):
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: nightly-pipeline\n    type: push\n    max_silence: 26h\n")
    now = [1_000_000.0]
    checker = HealthChecker(ServiceRegistry(load_config(path)), clock=lambda: now[0])
    # Within max_silence and nothing reported: nothing was observed, the state stays unknown.
    assert (await checker.check_service("nightly-pipeline"))["status"] == "unknown"
    now[0] += 3600
    assert checker.report_push("nightly-pipeline", "healthy")["status"] == "healthy"
    now[0] += 25 * 3600
    health = await checker.check_service("nightly-pipeline")
    assert health["status"] == "healthy"
    assert checker.states["nightly-pipeline"].probes == {"success": 1, "failure": 0}
    # The tick looked and found the report still good: the check is fresh, so a stale-probe
    # alert (last check older than 3 intervals) does not fire on a quiet push service.
    assert checker.states["nightly-pipeline"].last_check == now[0]
    assert health["last_check"] == iso_utc(now[0])
    now[0] += 3601
    health = await checker.check_service("nightly-pipeline")
    assert health["status"] == "unhealthy"
    assert health["metadata"]["probe"]["reason"] == "silence"
    assert "no report for 93601s since the last report" in health["metadata"]["probe"]["message"]
    assert checker.report_push("nightly-pipeline", "degraded")["status"] == "degraded"


async def test_silence_from_start_when_nothing_ever_reports(tmp_path):
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: job\n    type: push\n    max_silence: 1h\n")
    now = [5_000.0]
    checker = HealthChecker(ServiceRegistry(load_config(path)), clock=lambda: now[0])
    await checker.check_service("job")
    now[0] += 3601
    health = await checker.check_service("job")
    assert (health["status"], health["metadata"]["probe"]["reason"]) == ("unhealthy", "silence")
    assert "with no report yet" in health["metadata"]["probe"]["message"]


async def test_library_report_push_goes_through_exporter_url(aiohttp_server, make_app, target,
                                                             tmp_path):
    from exporter import PushError, report_push

    app, _ = make_app(services_yaml(target, PUSH), EXPORTER_API_TOKEN="w-token")
    server = await aiohttp_server(app, host="127.0.0.1")
    token_file = tmp_path / "token"
    token_file.write_text("w-token\n")
    env = {"EXPORTER_URL": f"http://127.0.0.1:{server.port}", "EXPORTER_API_TOKEN_FILE": str(token_file)}
    health = await asyncio.to_thread(report_push, "nightly-pipeline", "degraded", 40.0,
                                     "slow load", environ=env)
    assert (health["status"], health["latency_ms"]) == ("degraded", 40.0)
    with pytest.raises(PushError, match="HTTP 404.*not of type push"):
        await asyncio.to_thread(report_push, "up-svc", environ=env)
    with pytest.raises(PushError, match="HTTP 401"):
        await asyncio.to_thread(report_push, "nightly-pipeline",
                                environ={"EXPORTER_URL": env["EXPORTER_URL"]})
    with pytest.raises(ValueError, match="status must be one of"):
        report_push("nightly-pipeline", "fine", environ=env)
