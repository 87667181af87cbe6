"""The core HTTP API on a real sidecar against real loopback targets."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client import CollectorRegistry

from exporter.api.keys import ROUTE_INDEX
from exporter.api.routes import LEVELS
from exporter.app import create_app
from exporter.config.errors import ConfigError
from exporter.settings import load_settings
from tests.api.conftest import services_yaml
from tests.support.tools import require_tool


async def test_route_table_matches_router(sidecar):
    app = sidecar.server.app
    index = app[ROUTE_INDEX]
    registered = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        registered.add((route.method, route.resource.canonical))
    assert registered == set(index)
    assert all(r.level in LEVELS for r in index.values())
    assert index[("GET", "/healthz")].level == "public"
    assert index[("GET", "/readyz")].level == "public"
    assert index[("GET", "/metrics")].level == "read"
    assert index[("POST", "/api/health/services")].level == "write"
    assert index[("POST", "/-/reload")].level == "write"


async def test_healthz_and_readyz(sidecar):
    assert (await sidecar.get("/healthz")).status == 200
    ready = await sidecar.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["components"]["health"] is True


async def test_services_are_unknown_before_any_probe_then_probed_on_post(sidecar):
    body = await (await sidecar.get("/api/health/services")).json()
    assert body["summary"] == {"total": 2, "healthy": 0, "degraded": 0, "unhealthy": 0, "unknown": 2}
    assert body["overall_status"] == "unknown"  # nothing probed yet: nothing to claim
    assert body["shard"] == "0/1"
    metrics = await (await sidecar.get("/metrics")).text()
    assert 'usdcop_overall_status{status="unknown"} 1.0' in metrics
    assert 'usdcop_overall_status{status="healthy"} 0.0' in metrics
    assert "usdcop_probe_scheduler_enabled 0.0" in metrics.splitlines()
    up = await sidecar.post("/api/health/services", json={"service": "up-svc"})
    assert up.status == 200
    health = await up.json()
    assert health["status"] == "healthy"
    assert health["details"]["requests_per_minute"] == 120
    down = await (await sidecar.post("/api/health/services", json={"service": "down-svc"})).json()
    assert down["status"] == "unhealthy"
    body = await (await sidecar.get("/api/health/services")).json()
    assert body["overall_status"] == "degraded"  # down-svc is not critical
    assert body["summary"]["unknown"] == 0
    metrics = await (await sidecar.get("/metrics")).text()
    assert 'usdcop_overall_status{status="degraded"} 1.0' in metrics
    assert 'usdcop_overall_status{status="unknown"} 0.0' in metrics


async def test_post_errors_are_json_and_name_the_field(sidecar):
    cases = [
        ({"json": {"service": "nope"}}, 404, "not_found", "service"),
        ({"json": {"service": "up-svc", "url": "http://x"}}, 422, "invalid", "url"),
        ({"json": {}}, 422, "invalid", "service"),
        ({"json": {"service": 5}}, 422, "invalid", "service"),
        ({"data": b"{bad", "headers": {"Content-Type": "application/json"}}, 400, "bad_request", None),
        ({"data": b'{"service": "up-svc"}', "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type", None),
        ({"data": b" " * (9 * 1024 * 1024), "headers": {"Content-Type": "application/json"}}, 413,
         "payload_too_large", None),
    ]
    for kwargs, status, code, field in cases:
        resp = await sidecar.post("/api/health/services", **kwargs)
        assert resp.status == status, (kwargs.get("json"), await resp.text())
        body = await resp.json()
        assert body["error"] == code
        assert body["field"] == field
        assert body["detail"]


async def test_unknown_routes_and_methods_are_json(sidecar):
    resp = await sidecar.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await sidecar.delete("/healthz")
    assert resp.status == 405 and (await resp.json())["error"] == "method_not_allowed"
    resp = await sidecar.get("/api/health/services?x=1")
    assert resp.status == 400 and (await resp.json())["field"] == "x"
    resp = await sidecar.get("/probe?service=up-svc&service=down-svc")
    assert resp.status == 400 and "twice" in (await resp.json())["detail"]


async def test_metrics_text_openmetrics_and_promtool(sidecar, tmp_path):
    await sidecar.post("/api/health/services", json={"service": "up-svc"})
    await sidecar.post("/api/health/services", json={"service": "down-svc"})
    text = await (await sidecar.get("/metrics")).text()
    assert 'usdcop_service_up{service="up-svc"} 1.0' in text
    assert 'usdcop_service_status{service="down-svc",status="unhealthy"} 1.0' in text
    assert 'usdcop_service_info{critical="true",service="up-svc",team="desk",type="http"} 1.0' in text
    # down-svc is `critical: false`: its alerts warn instead of paging
    assert 'usdcop_service_info{critical="false",service="down-svc",team="",type="http"} 1.0' in text
    assert 'usdcop_service_probe_failures_total{reason="status",service="down-svc"} 1.0' in text
    assert 'usdcop_service_http_status_code{service="down-svc"} 503.0' in text
    assert 'usdcop_http_requests_total{code="200",method="POST",route="/api/health/services"}' in text
    assert "usdcop_build_info{" in text
    assert "usdcop_config_last_reload_successful 1.0" in text
    promtool = require_tool("promtool")
    out = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert out.returncode == 0 and not out.stdout and not out.stderr, out.stdout + out.stderr
    om = await sidecar.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await om.text()).endswith("# EOF\n")


async def test_probe_uses_blackbox_names_and_leaves_state_alone(sidecar):
    resp = await sidecar.get("/probe?service=up-svc")
    assert resp.status == 200
    text = await resp.text()
    assert "probe_success 1" in text
    assert "probe_http_status_code 200" in text
    assert 'usdcop_probe_status{status="healthy"} 1' in text
    assert "probe_duration_seconds " in text
    down = await (await sidecar.get("/probe?service=down-svc")).text()
    assert "probe_success 0" in down
    assert 'usdcop_probe_status{status="unhealthy"} 1' in down
    body = await (await sidecar.get("/api/health/services")).json()
    assert body["summary"]["unknown"] == 2
    assert (await sidecar.get("/probe")).status == 400
    assert (await sidecar.get("/probe?service=nope")).status == 404
    for bad in ("soon", "nan", "inf", "-1", "0"):
        resp = await sidecar.get("/probe?service=up-svc",
                                 headers={"X-Prometheus-Scrape-Timeout-Seconds": bad})
        assert resp.status == 400, bad


async def test_reload_adds_removes_and_keeps_old_config_on_error(aiohttp_client, make_app, target):
    app, path = make_app(services_yaml(target))
    client = await aiohttp_client(app)
    await client.post("/api/health/services", json={"service": "up-svc"})
    base = f"http://127.0.0.1:{target.port}"
    path.write_text(f"services:\n  - name: up-svc\n    url: {base}/ok\n    labels: {{team: desk}}\n"
                    f"  - name: added\n    url: {base}/ok\n")
    resp = await client.post("/-/reload")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["added"] == ["added"] and body["removed"] == ["down-svc"] and body["changed"] == []
    services = {s["service"]: s for s in (await (await client.get("/api/health/services")).json())["services"]}
    assert services["up-svc"]["status"] == "healthy"  # unchanged service kept its state
    assert services["added"]["status"] == "unknown"
    path.write_text("services:\n  - name: Bad Name\n    url: http://127.0.0.1:1/\n")
    resp = await client.post("/-/reload")
    assert resp.status == 400
    assert "name" in (await resp.json())["detail"]
    text = await (await client.get("/metrics")).text()
    assert "usdcop_config_last_reload_successful 0.0" in text
    assert 'usdcop_service_info{critical="true",service="added"' in text  # old configuration still runs


async def test_auth_levels_with_tokens(aiohttp_client, make_app, target):
    app, _ = make_app(services_yaml(target), EXPORTER_API_TOKEN="w-token", EXPORTER_ADMIN_TOKEN="a-token")
    client = await aiohttp_client(app)
    post = {"json": {"service": "up-svc"}}
    resp = await client.post("/api/health/services", **post)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await resp.json())["error"] == "unauthorized"
    resp = await client.post("/api/health/services", headers={"Authorization": "Bearer wrong"}, **post)
    assert resp.status == 401
    for token in ("w-token", "a-token"):
        resp = await client.post("/api/health/services", headers={"Authorization": f"Bearer {token}"}, **post)
        assert resp.status == 200
    assert (await client.get("/api/health/services")).status == 200  # read stays open
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/healthz", headers={"Authorization": "Bearer wrong"})).status == 200


async def test_no_tokens_means_open_write(sidecar):
    assert (await sidecar.post("/-/reload")).status == 200


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # columns: read none, read bogus, write none, write bogus, write admin, admin none,
        # admin bogus, admin api, admin admin
        ({}, [200, 200, 200, 200, 200, 403, 403, 403, 403]),
        ({"EXPORTER_API_TOKEN": "w-token"}, [200, 200, 401, 401, 401, 403, 403, 403, 403]),
        ({"EXPORTER_ADMIN_TOKEN": "a-token"}, [200, 200, 200, 200, 200, 401, 401, 401, 200]),
        ({"EXPORTER_API_TOKEN": "w-token", "EXPORTER_ADMIN_TOKEN": "a-token"},
         [200, 200, 401, 401, 200, 401, 401, 403, 200]),
    ],
)
async def test_auth_matrix_follows_the_spec_table(aiohttp_client, make_app, target, env, expected):
    app, _ = make_app(services_yaml(target), **env)
    client = await aiohttp_client(app)

    def bearer(token):
        return {"Authorization": f"Bearer {token}"} if token else {}

    # admin: the audit purge; with an admin token a real purge of nothing older than 30 d
    calls = [
        ("GET", "/api/health/services", None), ("GET", "/api/health/services", "bogus"),
        ("POST", "/-/reload", None), ("POST", "/-/reload", "bogus"), ("POST", "/-/reload", "a-token"),
        ("DELETE", "/api/audit/signals", None), ("DELETE", "/api/audit/signals", "bogus"),
        ("DELETE", "/api/audit/signals", "w-token"), ("DELETE", "/api/audit/signals", "a-token"),
    ]
    got = []
    for method, path, token in calls:
        resp = await client.request(method, path, headers=bearer(token))
        got.append(resp.status)
        if resp.status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert got == expected


async def test_openapi_lists_every_route(sidecar):
    doc = await (await sidecar.get("/api/openapi.json")).json()
    app = sidecar.server.app
    for method, path in app[ROUTE_INDEX]:
        assert method.lower() in doc["paths"][path]


async def test_server_header_hides_versions(sidecar):
    for path in ("/healthz", "/nope", "/metrics"):
        assert (await sidecar.get(path)).headers["Server"] == "usdcop-exporter"


async def test_scheduler_enabled_is_exported(aiohttp_client, make_app, target):
    app, _ = make_app(services_yaml(target), EXPORTER_SCHEDULER="on")
    client = await aiohttp_client(app)
    metrics = await (await client.get("/metrics")).text()
    assert "usdcop_probe_scheduler_enabled 1.0" in metrics.splitlines()


async def test_a_python_check_that_cannot_be_imported_stops_start_and_reload(
        aiohttp_client, make_app, target, tmp_path):
    bad = services_yaml(target, "  - name: model\n    type: python\n    check: 'no.such:fn'\n")
    path = tmp_path / "bad-services.yaml"
    path.write_text(bad)
    settings = load_settings({"EXPORTER_CONFIG": str(path), "EXPORTER_SCHEDULER": "off",
                              "AUDIT_SQLITE_PATH": str(tmp_path / "bad.sqlite3"),
                              "AUDIT_SPOOL_DIR": str(tmp_path / "bad-spool"),
                              "AUDIT_CHECKPOINT_DIR": str(tmp_path / "bad-checkpoints")})
    with pytest.raises(ConfigError) as info:
        create_app(settings, CollectorRegistry())
    assert (info.value.file, info.value.line) == (str(path), 9)  # the service entry
    assert (info.value.service, info.value.field) == ("model", "check")
    assert "cannot import no.such" in str(info.value)
    app, path = make_app(services_yaml(target))
    client = await aiohttp_client(app)
    path.write_text(bad)
    resp = await client.post("/-/reload")
    assert resp.status == 400
    body = await resp.json()
    assert body["field"] == "check" and "service 'model'" in body["detail"]
    assert "usdcop_config_last_reload_successful 0.0" in await (await client.get("/metrics")).text()
    assert "model" not in {s["service"] for s in
                           (await (await client.get("/api/health/services")).json())["services"]}
