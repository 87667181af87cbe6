"""Alertmanager example: amtool validation, routing per alert, inhibition in a real one."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.ops import artefacts as a
from tests.support.tools import free_port, ready_server, require_tool

pytestmark = pytest.mark.slow

CONFIG = a.PROMETHEUS_DIR / "alertmanager.yml"
TICKET_WARNINGS = {
    "UsdcopCertificateExpiringSoon",
    "UsdcopCacheHitRatioLow",
    "UsdcopServiceErrorBudgetBurn",
    "UsdcopAuditCheckpointOld",
}


def _amtool(*args: str) -> subprocess.CompletedProcess:
    amtool = require_tool("amtool")
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=30)


def test_amtool_accepts_the_config():
    res = _amtool("check-config", str(CONFIG))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def _expected_receiver(alertname: str, severity: str) -> str:
    if severity == "none":
        return "deadman"
    if severity == "critical":
        return "pager"
    return "tickets" if alertname in TICKET_WARNINGS else "chat"


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {
                "alertname": "UsdcopServiceUnhealthy",
                "severity": "critical",
                "service": "trading-api",
            },
            "pager",
        ),
        (
            {"alertname": "UsdcopServiceDegraded", "severity": "warning", "service": "trading-api"},
            "chat",
        ),
        ({"alertname": "Watchdog", "severity": "none"}, "deadman"),
        ({"alertname": "UsdcopSignalStale", "severity": "warning", "symbol": "USDCOP"}, "chat"),
        (
            {"alertname": "UsdcopCertificateExpiringSoon", "severity": "warning", "service": "x"},
            "tickets",
        ),
        (
            {"alertname": "UsdcopServiceErrorBudgetBurn", "severity": "critical", "service": "x"},
            "pager",
        ),
        (
            {"alertname": "UsdcopServiceErrorBudgetBurn", "severity": "warning", "service": "x"},
            "tickets",
        ),
        ({"alertname": "SomethingElse"}, "chat"),
    ],
)
def test_routes(labels, receiver):
    res = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receiver}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == receiver


def test_a_wrong_expectation_fails():
    """amtool's verification is what the routing tests rely on: it must be able to fail."""
    res = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=chat",
        "alertname=UsdcopExporterDown",
        "severity=critical",
    )
    assert res.returncode != 0


def test_every_shipped_alert_routes_by_its_severity():
    for rule in a.alerts():
        severity = rule.body["labels"]["severity"]
        expected = _expected_receiver(rule.alert, severity)
        res = _amtool(
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={expected}",
            f"alertname={rule.alert}",
            f"severity={severity}",
            "service=trading-api",
        )
        assert res.returncode == 0, (rule.alert, res.stdout + res.stderr)


def test_bogota_trading_hours_interval_is_used_by_a_non_critical_route():
    doc = yaml.safe_load(CONFIG.read_text())
    (interval,) = [t for t in doc["time_intervals"] if t["name"] == "bogota-trading-hours"]
    (spec,) = interval["time_intervals"]
    assert spec["location"] == "America/Bogota"
    assert spec["weekdays"] == ["monday:friday"]
    assert spec["times"] == [{"start_time": "08:00", "end_time": "13:00"}]
    muted = [
        r
        for r in doc["route"]["routes"]
        if "bogota-trading-hours" in r.get("mute_time_intervals", [])
    ]
    assert muted and all('severity="critical"' not in r["matchers"] for r in muted)
    assert doc["route"]["group_by"] == ["alertname", "service"]
    assert doc["route"]["repeat_interval"]


def test_receivers_only_point_at_loopback():
    doc = yaml.safe_load(CONFIG.read_text())
    urls = [w["url"] for r in doc["receivers"] for w in r.get("webhook_configs", [])]
    assert urls and all(u.startswith("http://127.0.0.1:") for u in urls)


# ---------------------------------------------------------------- a real Alertmanager


def _http_json(url: str, data=None):
    req = urllib.request.Request(
        url,
        data=None if data is None else json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@pytest.fixture
def alertmanager(tmp_path):
    """A private Alertmanager on a free loopback port, running the shipped config (webhooks
    moved to a closed port so nothing receives them)."""
    binary = require_tool("prometheus-alertmanager")
    closed = free_port()
    text = CONFIG.read_text().replace("http://127.0.0.1:5001/", f"http://127.0.0.1:{closed}/")
    config = tmp_path / "alertmanager.yml"
    config.write_text(text)
    port = free_port()
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with ready_server(args, port, tmp_path / "am.log", limit=30) as base:
        yield base


def _alert(name: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": name},
        "generatorURL": "http://127.0.0.1/",
    }


def _states(base: str, expect: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """Poll until every (alertname, service-or-instance) has the expected state."""
    deadline = time.monotonic() + 20
    while True:
        got = {}
        for alert in _http_json(base + "/api/v2/alerts"):
            key = (
                alert["labels"]["alertname"],
                alert["labels"].get("service") or alert["labels"].get("instance", ""),
            )
            got[key] = alert["status"]["state"]
        if all(got.get(k) == v for k, v in expect.items()) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_inhibition_rules_in_a_real_alertmanager(alertmanager):
    job = {"job": "usdcop-exporter"}
    _http_json(
        alertmanager + "/api/v2/alerts",
        [
            # Unhealthy silences Degraded of the same service only.
            _alert(
                "UsdcopServiceUnhealthy",
                severity="critical",
                service="trading-api",
                instance="a:9322",
                **job,
            ),
            _alert(
                "UsdcopServiceDegraded",
                severity="warning",
                service="trading-api",
                instance="b:9322",
                **job,
            ),
            _alert(
                "UsdcopServiceDegraded",
                severity="warning",
                service="ml-analytics",
                instance="b:9322",
                **job,
            ),
            # ExporterDown silences the other alerts of the same sidecar only.
            _alert("UsdcopExporterDown", severity="critical", instance="c:9322", **job),
            _alert(
                "UsdcopProbeStale",
                severity="warning",
                service="pipeline-api",
                instance="c:9322",
                **job,
            ),
            _alert(
                "UsdcopProbeStale",
                severity="warning",
                service="websocket",
                instance="d:9322",
                **job,
            ),
            # The critical certificate alert silences the warning one.
            _alert(
                "UsdcopCertificateExpiring",
                severity="critical",
                service="gateway",
                instance="a:9322",
                **job,
            ),
            _alert(
                "UsdcopCertificateExpiringSoon",
                severity="warning",
                service="gateway",
                instance="a:9322",
                **job,
            ),
        ],
    )
    expect = {
        ("UsdcopServiceUnhealthy", "trading-api"): "active",
        ("UsdcopServiceDegraded", "trading-api"): "suppressed",
        ("UsdcopServiceDegraded", "ml-analytics"): "active",
        ("UsdcopExporterDown", "c:9322"): "active",
        ("UsdcopProbeStale", "pipeline-api"): "suppressed",
        ("UsdcopProbeStale", "websocket"): "active",
        ("UsdcopCertificateExpiring", "gateway"): "active",
        ("UsdcopCertificateExpiringSoon", "gateway"): "suppressed",
    }
    assert _states(alertmanager, expect) == expect


def test_config_path_in_compose_matches():
    compose = yaml.safe_load((a.REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["alertmanager"]["volumes"]
    assert any(Path(m.split(":")[0]) == Path("./prometheus/alertmanager.yml") for m in mounts)
