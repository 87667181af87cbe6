"""The desk's alert rules, dashboard and runbook against promtool and a real sidecar's scrape."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from exporter.api.desk import DESK
from exporter.cache.trading_metrics import MetricsCache
from tests.ops.promql import selector_labels, series_names
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "prometheus" / "rules" / "usdcop-desk.yml"
RULE_TESTS = REPO / "prometheus" / "tests" / "usdcop-desk.test.yml"
DASHBOARD = REPO / "grafana" / "dashboards" / "usdcop-desk.json"
RUNBOOK = REPO / "docs" / "runbook.md"
HALT_GUARD = re.compile(r"\n\s*unless on \(\)\n\s*usdcop_trading_halted == 1")


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def test_promtool_checks_and_unit_tests_pass():
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_unit_tests_notice_a_missing_halt_guard(tmp_path):
    """Without `unless on() usdcop_trading_halted == 1` the suppression tests fail."""
    text = RULES.read_text()
    assert len(HALT_GUARD.findall(text)) == 2  # signal and financial-metrics staleness
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(HALT_GUARD.sub("", text))
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = _promtool("test", "rules", str(tmp_path / "tests" / RULE_TESTS.name))
    assert result.returncode != 0
    failed = set(re.findall(r"alertname: (\w+), time:", result.stdout + result.stderr))
    assert {"UsdcopSignalOverdue", "UsdcopFinancialMetricsOverdue"} <= failed


def test_every_desk_alert_has_annotations_a_runbook_section_and_a_test():
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.MULTILINE))
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    alerts = [r for r in _rules() if "alert" in r]
    assert len(alerts) == 10
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["runbook_url"].endswith("docs/runbook.md#" + name.lower()), name
        assert name in headings, f"docs/runbook.md has no '## {name}'"
        assert any(c["alertname"] == name and c["exp_alerts"] for c in cases), name
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), name


def test_dashboard_conventions_and_every_query_parses(tmp_path):
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == DASHBOARD.stem == "usdcop-desk" and doc["title"].startswith("USD/COP")
    assert (doc["refresh"], doc["editable"], doc.get("id")) == ("30s", False, None)
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    for panel in doc["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]
    exprs = [re.sub(r"\$\{?(symbol|service)\}?", ".*", e).replace("$__rate_interval", "1m")
             for e in _dashboard_exprs()]
    assert not any("$" in e for e in exprs)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"desk_panel_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    titles = {p["title"] for p in doc["panels"]}
    assert {"Market", "Risk limit utilization", "Position mismatches", "Service clock skew",
            "Audit future-time bound"} <= titles


# -- names against a real sidecar ---------------------------------------------------------


async def _clock_target(request: web.Request) -> web.Response:
    now = time.time() + 3.0  # 3 s ahead
    return web.json_response({"status": "healthy", "time": datetime.fromtimestamp(now, UTC).isoformat()},
                             headers={"Date": formatdate(now, usegmt=True)})


@pytest.fixture
async def clock_target(aiohttp_server):
    app = web.Application()
    app.router.add_get("/health", _clock_target)
    return await aiohttp_server(app, host="127.0.0.1")


def _scrape(text: str) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ", line)
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        out.setdefault(match.group(1), []).append(labels)
    return out


async def _until(client, wanted: list[str], seconds: float = 10.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        scraped = _scrape(await (await client.get("/metrics")).text())
        missing = [name for name in wanted if name not in scraped]
        if not missing or time.monotonic() > deadline:
            return scraped
        await client.get("/healthz")  # let the desk loops run


async def test_rules_and_panels_name_only_what_the_sidecar_exports(sidecar, clock_target):
    services = f"""
services:
  - name: model
    url: http://127.0.0.1:{clock_target.port}/health
    during: session
desk:
  sessions: {{mon: ["00:00-23:59"], tue: ["00:00-23:59"], wed: ["00:00-23:59"], thu: ["00:00-23:59"],
             fri: ["00:00-23:59"], sat: ["00:00-23:59"], sun: ["00:00-23:59"]}}
  freshness: {{signal_cadence: {{USDCOP: 1m}}, financial_metrics_cadence: 1m}}
  limits: {{max_drawdown: 0.2, daily_loss: 1000, max_position: 100, max_open_positions: 3,
           min_win_ratio: 0.4, min_trades: 1}}
"""
    client = await sidecar(services)
    now = datetime.now(UTC).isoformat()
    signal = {"signal_id": "s1", "timestamp": now, "symbol": "USDCOP", "action": "BUY",
              "confidence": 0.7, "price": 4100.0}
    assert (await client.post("/api/cache/signals", json=signal)).status == 201
    trading = MetricsCache(client.server.app[DESK].mirror.client)
    await trading.set_financial_metrics({"timestamp": now, "total_pnl": 10.0, "win_rate": 0.5,
                                         "max_drawdown": -0.1, "total_trades": 10, "active_positions": 1})
    await trading.set_position({"position_id": "p1", "symbol": "USDCOP", "side": "LONG", "quantity": 50,
                                "entry_price": 4100, "entry_time": now})
    assert (await client.post("/api/health/services", json={"service": "model"})).status == 200
    assert (await client.post("/api/trading/halt", json={"actor": "test"})).status == 201
    await client.server.app[DESK].reconciler.run_once()
    exprs = [r["expr"] for r in _rules()] + _dashboard_exprs()
    recorded = {r["record"] for r in _rules() if "record" in r}
    used = {n for e in exprs for n in series_names(e)} - recorded
    scraped = await _until(client, sorted(used))
    assert used <= set(scraped), f"named but not exported: {sorted(used - set(scraped))}"
    for expr in exprs:
        for metric, label, _op, _value in selector_labels(expr):
            if metric in scraped:
                assert any(label in series for series in scraped[metric]), (metric, label)
    assert {"service": "model", "type": "http", "critical": "true", "during": "session"} in scraped["usdcop_service_info"]
    assert len(used) >= 18
