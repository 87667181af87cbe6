"""End to end: the shipped rules, Alertmanager routing and dashboards against a real stack.

A real sidecar (`usdcop-exporter serve`, a subprocess) probes real local services — the
demo's simulated ones (healthy, slow, flaky, down) and a TLS one — with trading state in
the machine's Redis (own namespace) and its audit trail in a fresh Postgres database. The
demo's trading engine writes signals, positions, financial and custom metrics, latency
records and audit events through the library, as a real engine would. A second sidecar
(in-process) probes `websocket` from elsewhere and sees it degraded, so both alerts exist
for that service and the inhibition rule has something to inhibit. A real Prometheus
loads the shipped rules (`for:` shortened in a copy) and sends to a real Alertmanager
running the shipped routing, whose webhooks point at a receiver in this test.

Checked: (a) every Prometheus query of every dashboard panel, with variables and Grafana
macros substituted, returns data; (b) UsdcopServiceUnhealthy and UsdcopServiceDegraded
reach the right receivers for the right services, never for the healthy ones, and the
unhealthy service's degraded alert is inhibited; (c) every Postgres panel of the audit
dashboard runs against the sidecar's audit schema and finds rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg
import pytest
import yaml

from exporter.demo.config import demo_config, desk_section
from exporter.demo.engine import DemoEngine
from exporter.demo.incidents import PHANTOM_SYMBOL, Incidents, open_phantom_position
from exporter.demo.runner import embedded_sidecar, library_parts
from exporter.demo.services import ServiceSpec, SimulatedServices, default_specs
from exporter.settings import Settings
from tests.e2e import grafana as g
from tests.e2e import stack as s
from tests.ops import artefacts as a
from tests.support.targets import start_targets
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow

SLOW_DELAY = 0.4  # the slow service's answer time; the sidecars' degraded_latency is below
# Unhealthy fires well before Degraded, so the inhibiting alert is already in
# Alertmanager when the one it inhibits arrives (as with the real 2m and 5m).
SHORTENED_FOR = {"UsdcopServiceUnhealthy": "1s", "UsdcopServiceDegraded": "8s"}
HEALTHY = ("trading-api", "gateway")
# The single-value $service of the service dashboard: the TLS one, so that the
# certificate, phase, HTTP status and reported-details panels all have something to show.
SINGLE_VALUES = {"service": "gateway"}
# Panels that legitimately have no data in this scenario: (dashboard uid, panel title) →
# why. Empty on purpose: the scenario gives every panel something to show; a panel added
# later that cannot have data here must be listed with its reason.
NO_DATA_EXPECTED: dict[tuple[str, str], str] = {
    ("usdcop-service", "ICMP loss"): "the service shown is gateway, an http service; only icmp "
                                     "services have a loss ratio",
}
# Dashboards this scenario does not feed at all, with the reason. Every other dashboard
# file is checked, so a new dashboard is either fed by the scenario or listed here.
NOT_IN_SCENARIO: dict[str, str] = {}
EXPECTED_LABEL_VALUES = {
    "service": {"trading-api", "ml-analytics", "pipeline-api", "websocket", "gateway"},
    "symbol": {"USDCOP", "EURCOP", PHANTOM_SYMBOL},
    "operation": {"generate_signal", "publish_metrics", "fetch_quote", "predict", "cancel_order"},
    "instance": set(),  # checked against the two sidecars below
}
STARTUP_TIMEOUT = 30.0
ALERT_TIMEOUT = 45.0
QUERY_TIMEOUT = 40.0


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw) -> tuple[int, dict]:
    async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=10), **kw) as r:
        return r.status, await r.json(content_type=None)


async def _prom(session, base: str, path: str, params: dict) -> dict:
    status, body = await _json(session, "GET", base + path, params=params)
    assert body.get("status") == "success", f"{path} {params}: HTTP {status} {body}"
    return body["data"]


# -- (a) ---------------------------------------------------------------------------------


def _scenario_dashboards() -> list[dict]:
    return [d for d in a.dashboards().values() if d["uid"] not in NOT_IN_SCENARIO]


async def _dashboard_queries_return_data(session, prom: str, instances: set[str]) -> None:
    pending: dict[tuple[str, str, str], str] = {}
    for d in _scenario_dashboards():
        if d["uid"] == "usdcop-audit":
            continue
        defined = g.variables(d)
        for title, expr in g.prom_targets(d):
            pending[(d["uid"], title, expr)] = g.substitute_promql(expr, defined, SINGLE_VALUES)
    assert len(pending) > 100, "every Prometheus panel query is collected"
    empty_ok = {k for k in pending if (k[0], k[1]) in NO_DATA_EXPECTED}
    deadline = time.monotonic() + QUERY_TIMEOUT
    while True:
        for key in [k for k in pending if k not in empty_ok]:
            data = await _prom(session, prom, "/api/v1/query", {"query": pending[key]})
            if data["resultType"] == "scalar" or data["result"]:
                del pending[key]
        if len(pending) == len(empty_ok) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    missing = [f"{uid} / {title}: {pending[(uid, title, expr)]}"
               for uid, title, expr in pending if (uid, title, expr) not in empty_ok]
    assert not missing, "panels without data:\n" + "\n".join(missing)
    # The list of exceptions stays honest: a listed panel must really have no data here.
    for uid, title, expr in empty_ok:
        data = await _prom(session, prom, "/api/v1/query", {"query": pending[(uid, title, expr)]})
        assert not data["result"], f"{uid} / {title} has data: drop it from NO_DATA_EXPECTED"

    # Every query variable lists the values this scenario produces.
    for d in _scenario_dashboards():
        for name, v in g.variables(d).items():
            if v["type"] != "query" or v["datasource"]["type"] != "prometheus":
                continue
            selector = v["definition"].removeprefix("label_values(").rsplit(", ", 1)[0]
            selector = g.substitute_promql(selector, g.variables(d), SINGLE_VALUES)
            values = set(await _prom(session, prom, f"/api/v1/label/{name}/values",
                                     {"match[]": selector}))
            expected = EXPECTED_LABEL_VALUES[name] or instances
            assert expected <= values, f"{d['uid']} ${name}: {sorted(values)}"


# -- (b) ---------------------------------------------------------------------------------


async def _am_alerts(session, am: str) -> list[dict]:
    return (await _json(session, "GET", am + "/api/v2/alerts"))[1]


async def _alerts_reach_alertmanager(session, am: str, hook: s.WebhookReceiver,
                                     procs: tuple[s.Process, ...]) -> None:
    await s.until(lambda: hook.got("UsdcopServiceUnhealthy", service="websocket")
                  and hook.got("UsdcopServiceDegraded", service="ml-analytics"),
                  "the unhealthy and degraded notifications", ALERT_TIMEOUT, procs,
                  describe=hook.summary)
    (unhealthy, *_) = hook.got("UsdcopServiceUnhealthy", service="websocket")
    (degraded, *_) = hook.got("UsdcopServiceDegraded", service="ml-analytics")
    # Routed by severity, with the shipped labels and annotations.
    assert unhealthy.receiver == "pager"
    assert unhealthy.labels["severity"] == "critical"
    assert unhealthy.labels["job"] == "usdcop-exporter"
    assert unhealthy.annotations["summary"] == "Service websocket is unhealthy"
    assert unhealthy.annotations["runbook_url"].endswith("docs/runbook.md#usdcopserviceunhealthy")
    assert degraded.receiver == "chat"
    assert degraded.labels["severity"] == "warning"
    assert degraded.annotations["summary"] == "Service ml-analytics is degraded"
    assert "ml-analytics" in degraded.annotations["description"]
    # The always-firing Watchdog proves the whole pipeline to the deadman receiver.
    await s.until(lambda: [n for n in hook.got("Watchdog") if n.receiver == "deadman"],
                  "the Watchdog at the deadman receiver", ALERT_TIMEOUT, procs,
                  describe=hook.summary)

    # websocket is degraded as the second sidecar sees it; Alertmanager has that alert
    # and holds it back because the same service is unhealthy.
    def inhibited(alerts: list[dict]) -> list[dict]:
        return [x for x in alerts if x["labels"]["alertname"] == "UsdcopServiceDegraded"
                and x["labels"].get("service") == "websocket"
                and x["status"]["state"] == "suppressed" and x["status"]["inhibitedBy"]]

    async def found() -> list[dict]:
        return inhibited(await _am_alerts(session, am))

    await s.until(found, "websocket's degraded alert, inhibited", ALERT_TIMEOUT, procs)
    assert not hook.got("UsdcopServiceDegraded", service="websocket"), \
        "an inhibited alert reached a receiver"

    # Nothing at all about the healthy services, in Alertmanager or at a receiver.
    alerts = await _am_alerts(session, am)
    about_healthy = [x["labels"] for x in alerts if x["labels"].get("service") in HEALTHY]
    assert not about_healthy, about_healthy
    notified = [n.labels for n in hook.notifications if n.labels.get("service") in HEALTHY]
    assert not notified, notified
    states = {(x["labels"]["alertname"], x["labels"].get("service")): x["status"]["state"]
              for x in alerts}
    assert states[("UsdcopServiceUnhealthy", "websocket")] == "active"
    assert states[("UsdcopServiceDegraded", "ml-analytics")] == "active"


# -- (c) ---------------------------------------------------------------------------------


async def _audit_panels_find_rows(dsn: str, start: datetime) -> None:
    (d,) = [d for d in a.dashboards().values() if d["uid"] == "usdcop-audit"]
    defined = g.variables(d)
    end = datetime.now(UTC) + timedelta(minutes=1)
    queries = [*g.sql_targets(d), ("$symbol variable", defined["symbol"]["definition"])]
    assert len(queries) >= 7
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for title, raw in queries:
            sql = g.substitute_sql(raw, start, end, defined)
            cur = await conn.execute(sql)
            rows = await cur.fetchall()
            assert rows, f"audit / {title}: no rows\n{sql}"
            if len(rows) == 1 and len(rows[0]) == 1:
                assert rows[0][0] is not None and rows[0][0] > 0, f"audit / {title}: {rows}"
            if title == "Newest events (50)":
                columns = [c.name for c in cur.description]
                got = [dict(zip(columns, r, strict=True)) for r in rows]
                assert len(got) == 50, "more than 50 events exist: the panel shows 50"
                seqs = [r["sequence"] for r in got]
                assert seqs == sorted(seqs, reverse=True)
                assert all(len(r["hash"]) == 64 and len(r["prev_hash"]) == 64 for r in got)
            if title == "$symbol variable":
                assert {"USDCOP", "EURCOP"} <= {r[0] for r in rows}
        by_actor = await (await conn.execute(g.substitute_sql(
            dict(g.sql_targets(d))["Events by actor"], start, end, defined))).fetchall()
        assert {"trading-engine", "e2e"} <= {r[0] for r in by_actor}, by_actor


# -- the scenario ------------------------------------------------------------------------


async def _engine_trades(settings: Settings) -> DemoEngine:
    """Run the demo engine through the library until it has traded and holds a position.
    Before the sidecar starts, so that its first mirror scan finds every symbol and custom
    metric (it rescans only every 30 s)."""
    async with library_parts(settings, environ={}) as parts:
        engine = DemoEngine(parts, seed=20240611)
        # 15 rounds write well over 50 audit events: the newest-events panel's LIMIT bites.
        while engine.ticks < 15 or not engine.positions or not engine.book.realized:
            assert engine.ticks < 200, "the engine never opened and closed a position"
            await engine.tick()
        assert engine.audit_failures == 0
        # A position in Redis the audit trail never saw: a mismatch and a risk breach.
        await open_phantom_position(parts.metrics)
    return engine


async def _engine_forwards(engine: DemoEngine, settings: Settings) -> None:
    """A few more rounds with the sidecar up: latency records and timed operations are
    forwarded to it (EXPORTER_URL)."""
    async with library_parts(settings, environ={}) as parts:
        engine.parts = parts
        for _ in range(3):
            await engine.tick()
    # Leaving library_parts flushed the forwarder and the audit writer.
    assert engine.audit_failures == 0


async def _posts(session, sidecar: str) -> None:
    status, body = await _json(session, "POST", sidecar + "/api/health/latency", json={
        "records": [
            {"service": "broker-gateway", "operation": "cancel_order", "latency_ms": 31.5,
             "success": False},
            {"service": "broker-gateway", "operation": "cancel_order", "latency_ms": 12.0},
        ]})
    assert (status, body) == (200, {"accepted": 2})
    status, body = await _json(session, "POST", sidecar + "/api/audit/signals", json={
        "events": [
            {"event_type": "TRADE_EXECUTED", "symbol": "USDCOP", "actor": "e2e",
             "data": {"trade_id": "e2e-1", "side": "BUY", "price": 4250.5, "quantity": 1}},
            {"event_type": "POSITION_OPENED", "symbol": "USDCOP", "actor": "e2e",
             "data": {"position_id": "e2e-1", "side": "LONG", "quantity": 1}},
        ]})
    assert status == 201, body
    status, body = await _json(session, "GET", sidecar + "/api/cache/signals",
                               params={"type": "latest", "symbol": "USDCOP"})
    assert status == 200 and body["signal"]["symbol"] == "USDCOP", body
    status, body = await _json(session, "GET", sidecar + "/api/audit/verify",
                               params={"full": "true"})
    assert status == 200 and body["ok"] is True and body["checked"] > 20, body


async def test_dashboards_alerts_and_audit_panels_on_a_real_stack(
        tmp_path: Path, pg_dsn: str, redis_url: str, redis_namespace: str):
    prometheus_bin = require_tool("prometheus")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    started = datetime.now(UTC) - timedelta(minutes=1)
    procs: list[s.Process] = []
    hook = s.WebhookReceiver()
    # websocket down here (the demo streams on it), so a critical service is unhealthy.
    specs = [ServiceSpec(spec.name, "down" if spec.name == "websocket" else spec.kind, 0)
             for spec in default_specs((0, 0, 0, 0))]
    services = SimulatedServices(specs, slow_delay=SLOW_DELAY)
    engine_settings = Settings(
        redis_url=redis_url, redis_namespace=redis_namespace, postgres_url=pg_dsn,
        audit_spool_dir=str(tmp_path / "engine-spool"))
    engine = await _engine_trades(engine_settings)
    async with start_targets() as targets, services, aiohttp.ClientSession() as session:
        await hook.start()
        try:
            # The sidecar under test, probing every second.
            doc = demo_config(services, interval=1.0,
                              environ={"REDIS_URL": redis_url, "POSTGRES_URL": pg_dsn},
                              desk=desk_section(engine.symbols, cadence=1.0,
                                                reconcile_interval=1.0))
            doc["services"].append({"name": "gateway", "url": targets.tls_url("/healthy"),
                                    "tls": {"ca_file": targets.ca_file}})
            config = tmp_path / "services.yaml"
            config.write_text(yaml.safe_dump(doc))
            env = s.clean_env(
                REDIS_URL=redis_url, REDIS_NAMESPACE=redis_namespace, POSTGRES_URL=pg_dsn,
                AUDIT_SPOOL_DIR=str(tmp_path / "spool"),
                AUDIT_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
                AUDIT_CHECKPOINT_KEY="end-to-end-checkpoint-key", AUDIT_CHECKPOINT_EVERY="5",
                MIRROR_INTERVAL="1s", MIRROR_SYMBOLS="USDCOP,EURCOP", LOG_FORMAT="json")
            sidecar = s.start("sidecar", [*s.sidecar_command(), "serve", "--config",
                                          str(config), "--listen", "127.0.0.1:0"], tmp_path, env)
            procs.append(sidecar)
            am_proc, am = s.start_alertmanager(alertmanager_bin, tmp_path,
                                               s.alertmanager_config(hook.url))
            procs.append(am_proc)

            # A second sidecar that sees websocket (here: the slow service) as degraded.
            other_config = tmp_path / "other.yaml"
            other_config.write_text(yaml.safe_dump({
                "defaults": {"interval": "1s"},
                "services": [{"name": "websocket", "url": services.url("ml-analytics"),
                              "degraded_latency": "50ms"}]}))
            other_settings = Settings(
                config=str(other_config), listen_host="127.0.0.1", listen_port=0,
                audit_sqlite_path=str(tmp_path / "other.sqlite3"),
                audit_spool_dir=str(tmp_path / "other-spool"),
                audit_checkpoint_dir=str(tmp_path / "other-checkpoints"))
            async with embedded_sidecar(other_settings) as (_, other):
                port = await s.until(lambda: s.listening_port(sidecar), "the sidecar's ready line",
                                     STARTUP_TIMEOUT, (sidecar,))
                base = f"http://127.0.0.1:{port}"
                rules = s.copy_rules(tmp_path / "rules", SHORTENED_FOR)
                instances = {f"127.0.0.1:{port}", other.removeprefix("http://")}
                prom_proc, prom = s.start_prometheus(
                    prometheus_bin, tmp_path,
                    s.prometheus_config(sorted(instances), rules, am.removeprefix("http://")))
                procs.append(prom_proc)

                # Latency records, timed operations and audit events, while Prometheus starts.
                await _engine_forwards(engine, dataclasses.replace(engine_settings,
                                                                   exporter_url=base))
                await _posts(session, base)
                await _desk_incidents(session, base, engine, (sidecar,))

                for proc, url in ((am_proc, am), (prom_proc, prom)):
                    await s.until(lambda u=url: s.http_ok(session, u + "/-/ready"),
                                  f"{proc.name} to be ready", STARTUP_TIMEOUT, tuple(procs))
                await s.until(lambda: _targets_up(session, prom, len(instances)),
                              "Prometheus scraping both sidecars", STARTUP_TIMEOUT, tuple(procs))

                await _alerts_reach_alertmanager(session, am, hook, tuple(procs))
                await _dashboard_queries_return_data(session, prom, instances)
                await _audit_panels_find_rows(pg_dsn, started)
        finally:
            await s.stop_all(procs)
            await hook.close()
    assert sidecar.popen.returncode == 0, "the sidecar stops cleanly on SIGTERM:\n" + \
        sidecar.log_text()[-3000:]


async def _desk_incidents(session, base: str, engine: DemoEngine,
                          procs: tuple[s.Process, ...]) -> None:
    """The demo's desk incidents as the sidecar sees them: a halt through its API, the
    phantom position reported as a mismatch and recorded as a position-size breach."""
    incidents = Incidents(engine, base)
    try:
        assert await incidents.halt()
    finally:
        await incidents.close(undo=False)  # the halt stays: the desk panels show it
    status, halt = await _json(session, "GET", base + "/api/trading/halt")
    assert (status, halt["halted"], halt["reason"]) == (200, True, "risk_limit"), halt

    async def mismatch() -> bool:
        status, report = await _json(session, "GET", base + "/api/desk/reconciliation")
        rows = {r["symbol"]: r for r in report.get("positions", [])} if status == 200 else {}
        return bool(rows.get(PHANTOM_SYMBOL, {}).get("mismatch")) and not any(
            r["mismatch"] for sym, r in rows.items() if sym != PHANTOM_SYMBOL)

    await s.until(mismatch, f"the {PHANTOM_SYMBOL} mismatch (and only that one)", 30, procs)

    async def breach() -> list[dict]:
        _, page = await _json(session, "GET", base + "/api/audit/signals",
                              params={"eventType": "RISK_LIMIT_BREACHED"})
        return [e for e in page["events"] if e["data"]["limit"] == "position_size"
                and e["symbol"] == PHANTOM_SYMBOL]

    await s.until(breach, f"the {PHANTOM_SYMBOL} position-size breach in the trail", 30, procs)


async def _targets_up(session, prom: str, count: int) -> bool:
    data = await _prom(session, prom, "/api/v1/query", {"query": 'up{job="usdcop-exporter"} == 1'})
    return len(data["result"]) == count


def test_the_scenario_names_real_dashboard_variables():
    """The single values chosen above are variables the dashboards really have."""
    names = {n for d in a.dashboards().values() for n in g.variables(d)}
    assert set(SINGLE_VALUES) <= names
    assert set(EXPECTED_LABEL_VALUES) <= names
    uids = {d["uid"] for d in a.dashboards().values()}
    assert all(uid in uids for uid, _ in NO_DATA_EXPECTED)
    assert set(NOT_IN_SCENARIO) <= uids, "a dashboard listed as not fed no longer exists"
    # The six dashboards other than the desk's are always fed by the scenario.
    assert not set(NOT_IN_SCENARIO) & {"usdcop-overview", "usdcop-service", "usdcop-latency",
                                       "usdcop-trading", "usdcop-audit", "usdcop-exporter"}


def test_substitution_fills_every_macro_and_variable():
    """The substitution the end-to-end test relies on leaves nothing for Grafana to fill."""
    for d in a.dashboards().values():
        defined = g.variables(d)
        for _title, expr in g.prom_targets(d):
            assert "$" not in g.substitute_promql(expr, defined, SINGLE_VALUES)
        now = datetime.now(UTC)
        for _title, sql in g.sql_targets(d):
            out = g.substitute_sql(sql, now - timedelta(hours=1), now, defined)
            assert "${" not in out and "$__" not in out
    with pytest.raises(KeyError, match=r"\$nope"):
        g.substitute_promql('up{x="$nope"}', {}, {})
    with pytest.raises(ValueError, match="macro"):
        g.substitute_sql("SELECT $__unixEpochFilter(t)", datetime.now(UTC), datetime.now(UTC), {})


