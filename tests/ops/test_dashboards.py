"""Grafana dashboards: lint, metric names, and every query run against real servers."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import yaml

from exporter.audit.pg_schema import migrate
from tests.ops import artefacts as a
from tests.ops.metric_docs import series_labels
from tests.ops.promql import ranges, selector_labels, series_names
from tests.support.tools import free_port, ready_server, require_tool

pytestmark = pytest.mark.slow

EXPECTED_UIDS = {
    "usdcop-overview",
    "usdcop-service",
    "usdcop-latency",
    "usdcop-trading",
    "usdcop-audit",
    "usdcop-exporter",
    "usdcop-desk",
}
PG_TYPE = "grafana-postgresql-datasource"
DASHBOARDS = a.dashboards()


def _prom_targets():
    """(dashboard uid, panel title, expr) of every Prometheus query."""
    for d in DASHBOARDS.values():
        for p in a.all_panels(d):
            for t in p.get("targets", []):
                if "expr" in t:
                    yield d["uid"], p["title"], t["expr"]


def _sql_targets():
    for d in DASHBOARDS.values():
        for p in a.all_panels(d):
            for t in p.get("targets", []):
                if "rawSql" in t:
                    yield d["uid"], p["title"], t["rawSql"]


def _variables(d: dict) -> dict[str, dict]:
    return {v["name"]: v for v in d["templating"]["list"]}


# ------------------------------------------------------------------------------- lint


def test_seven_dashboards_with_stable_unique_uids():
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    for path, d in DASHBOARDS.items():
        assert path.stem == d["uid"], "file name and uid agree, so the uid stays stable"
        assert d.get("id") is None, "no database id in provisioned JSON"
        assert d["title"].startswith("USD/COP")


@pytest.mark.parametrize("path", sorted(DASHBOARDS), ids=lambda p: p.stem)
def test_dashboard_basics(path):
    d = DASHBOARDS[path]
    assert d["refresh"] == "30s"
    assert d["editable"] is False
    variables = _variables(d)
    ds = variables["datasource"]
    assert ds["type"] == "datasource"
    if d["uid"] == "usdcop-audit":
        assert (ds["query"], ds["current"]["value"]) == (PG_TYPE, "audit-postgres")
    else:
        assert (ds["query"], ds["current"]["value"]) == ("prometheus", "prometheus")
    ids = [p["id"] for p in a.all_panels(d)]
    assert len(ids) == len(set(ids))


def test_latency_dashboard_defaults_to_five_minutes():
    (d,) = [d for d in DASHBOARDS.values() if d["uid"] == "usdcop-latency"]
    assert d["time"] == {"from": "now-5m", "to": "now"}


@pytest.mark.parametrize("path", sorted(DASHBOARDS), ids=lambda p: p.stem)
def test_every_panel_has_the_datasource_variable_and_targets(path):
    d = DASHBOARDS[path]
    for p in a.all_panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            assert ("expr" in t) != ("rawSql" in t), p["title"]
            if "expr" in t:
                assert p["datasource"]["type"] == "prometheus", p["title"]
            else:
                assert p["datasource"]["type"] == PG_TYPE, p["title"]


@pytest.mark.parametrize("path", sorted(DASHBOARDS), ids=lambda p: p.stem)
def test_multi_value_variables_use_all_value_and_regex_matchers(path):
    d = DASHBOARDS[path]
    variables = _variables(d)
    for v in variables.values():
        if v.get("multi"):
            assert v["includeAll"] is True and v["allValue"] == ".*", v["name"]
    texts = [
        (t["expr"], "promql") if "expr" in t else (t["rawSql"], "sql")
        for p in a.all_panels(d)
        for t in p["targets"]
    ]
    texts += [
        (v["definition"], "promql" if v["datasource"]["type"] == "prometheus" else "sql")
        for v in variables.values()
        if v["type"] == "query"
    ]
    refs = 0
    for text, kind in texts:
        for m in re.finditer(r"\$\{?(\w+)(:\w+)?\}?", text):
            name, fmt, before = m.group(1), m.group(2), text[: m.start()]
            if name.startswith("__"):
                continue  # Grafana's own macros
            assert name in variables, f"{d['uid']}: unknown variable ${name}"
            refs += 1
            if kind == "sql":
                assert variables[name].get("multi") and fmt == ":regex", text
                assert re.search(r"~ '\^\($", before), (
                    f"SQL must match ${name} as ~ '^(...)$': {text}"
                )
            elif variables[name].get("multi"):
                assert re.search(r'=~\s*"$', before), (
                    f"{d['uid']}: multi-value ${name} needs =~: {text}"
                )
            else:
                assert re.search(r'=\s*"$', before), f"{d['uid']}: ${name}: {text}"
    assert refs, "the dashboard's variables are used"


def test_sql_filters_use_regex_matching_on_variables():
    (d,) = [d for d in DASHBOARDS.values() if d["uid"] == "usdcop-audit"]
    variables = _variables(d)
    assert variables["event_type"]["multi"] and variables["symbol"]["multi"]
    filtered = 0
    for _uid, _title, sql in _sql_targets():
        for m in re.finditer(r"\$\{(\w+)(:\w+)?\}", sql):
            assert m.group(2) == ":regex", sql
            assert re.search(r"~ '\^\($", sql[: m.start()]), sql
            filtered += 1
    assert filtered >= 4


def test_rate_windows_use_rate_interval():
    for uid, title, expr in _prom_targets():
        for window in ranges(expr):
            assert window == "$__rate_interval", f"{uid} / {title}: [{window}]"


def test_query_variables_come_from_label_values():
    for d in DASHBOARDS.values():
        for name, v in _variables(d).items():
            if v["type"] == "query" and v["datasource"]["type"] == "prometheus":
                assert re.fullmatch(rf"label_values\((.+), {name}\)", v["definition"]), v[
                    "definition"
                ]
                assert v["query"]["query"] == v["definition"]
    names = {n for d in DASHBOARDS.values() for n in _variables(d)}
    assert {"service", "symbol", "operation"} <= names


def test_dashboards_name_only_spec_metrics_and_their_labels():
    known = series_labels()
    recorded = a.recorded_names()
    used = set()
    for uid, title, expr in _prom_targets():
        for name in series_names(expr):
            assert name in known or name in recorded, f"{uid} / {title}: unknown series {name!r}"
            used.add(name)
        for metric, label, _op, _value in selector_labels(expr):
            allowed = known.get(metric) if metric else None
            if metric in known and allowed is not None:
                assert label in allowed, f"{uid} / {title}: {metric} has no label {label!r}"
    for d in DASHBOARDS.values():
        for v in _variables(d).values():
            if v["type"] == "query" and v["datasource"]["type"] == "prometheus":
                selector = re.fullmatch(r"label_values\((.+), (\w+)\)", v["definition"])
                for name in series_names(selector.group(1)):
                    assert name in known, f"{d['uid']}: variable {v['name']} uses {name!r}"
                    allowed = known[name]
                    assert allowed is None or selector.group(2) in allowed, v["definition"]
    # The dashboards between them show a good part of what the sidecar exports.
    assert len({n for n in used if n.startswith("usdcop_")}) >= 60


def test_provisioning_points_at_the_dashboards_and_fixed_datasource_uids():
    (ds_file,) = (a.PROVISIONING_DIR / "datasources").glob("*.yaml")
    datasources = {d["uid"]: d for d in yaml.safe_load(ds_file.read_text())["datasources"]}
    assert datasources["prometheus"]["type"] == "prometheus"
    assert datasources["prometheus"]["url"] == "http://prometheus:9090"
    assert datasources["audit-postgres"]["type"] == PG_TYPE
    (prov_file,) = (a.PROVISIONING_DIR / "dashboards").glob("*.yaml")
    (provider,) = yaml.safe_load(prov_file.read_text())["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    compose = yaml.safe_load((a.REPO / "docker-compose.yml").read_text())
    mounts = dict(m.rsplit(":", 2)[:2] for m in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# ----------------------------------------------------------- against a real Prometheus


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A private Prometheus on a free loopback port, loading the shipped rule files."""
    binary = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
                "rule_files": [str(p) for p in a.rule_files()],
            }
        )
    )
    port = free_port()
    args = [
        binary,
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={tmp / 'data'}",
    ]
    with ready_server(args, port, tmp / "prometheus.log") as base:
        yield base


def _api(base: str, path: str, params: list[tuple[str, str]]) -> dict:
    data = urllib.parse.urlencode(params).encode() if params else None
    req = urllib.request.Request(base + path, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())


_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def _substitute(expr: str, variables: dict[str, dict], value_for_single: str) -> str:
    for macro, value in _MACROS.items():
        expr = expr.replace(macro, value)

    def repl(m):
        v = variables[m.group(1)]
        return ".*" if v.get("multi") else value_for_single

    expr = re.sub(r"\$\{?(\w+)\}?", repl, expr)
    assert "$" not in expr, expr
    return expr


def test_every_dashboard_query_parses_in_prometheus(prometheus):
    checked = 0
    for d in DASHBOARDS.values():
        if d["uid"] == "usdcop-audit":
            continue
        variables = _variables(d)
        for p in a.all_panels(d):
            for t in p["targets"]:
                expr = _substitute(t["expr"], variables, "trading-api")
                res = _api(prometheus, "/api/v1/query", [("query", expr)])
                assert res["status"] == "success", f"{d['uid']} / {p['title']}: {expr}\n{res}"
                checked += 1
        for v in variables.values():
            if v["type"] == "query":
                selector = re.fullmatch(r"label_values\((.+), (\w+)\)", v["definition"]).group(1)
                selector = _substitute(selector, variables, "trading-api")
                res = _api(prometheus, "/api/v1/series", [("match[]", selector)])
                assert res["status"] == "success", f"{d['uid']} ${v['name']}: {selector}\n{res}"
                checked += 1
    assert checked > 100


def test_a_broken_query_is_refused(prometheus):
    """The parse check above can fail: Prometheus refuses a malformed expression."""
    res = _api(prometheus, "/api/v1/query", [("query", "sum by (service (usdcop_service_up)")])
    assert res["status"] == "error"


def test_prometheus_loads_every_rule_group(prometheus):
    res = _api(prometheus, "/api/v1/rules", [])
    assert res["status"] == "success"
    groups = {g["name"]: g for g in res["data"]["groups"]}
    loaded = {(r.get("name")) for g in groups.values() for r in g["rules"]}
    assert {r.alert or r.record for r in a.rules()} <= loaded
    for g in groups.values():
        for r in g["rules"]:
            assert r.get("health") in {"ok", "unknown"}, (r["name"], r.get("lastError"))


# ----------------------------------------------------------------- against real Postgres

COLUMNS = [
    "sequence",
    "event_id",
    "event_type",
    "timestamp",
    "received_at",
    "accepted_at",
    "symbol",
    "actor",
    "data",
    "prev_hash",
    "hash",
]


async def _migrate(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await migrate(conn)


@pytest.fixture
def audit_db(pg_dsn):
    """A database with the sidecar's own audit schema (its migrations) and 120 events."""
    asyncio.run(_migrate(pg_dsn))
    now = datetime.now(UTC)
    types = ["SIGNAL_GENERATED", "TRADE_EXECUTED", "CONFIG_CHANGED"]
    symbols = ["USDCOP", "EURUSD", None, "x'); DROP TABLE usdcop_audit.events; --"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            for seq in range(1, 121):
                at = now - timedelta(minutes=121 - seq)
                cur.execute(
                    "INSERT INTO usdcop_audit.events (sequence, event_id, event_type,"
                    ' "timestamp", received_at, accepted_at, symbol, actor, data, prev_hash, hash)'
                    " VALUES (%s, gen_random_uuid(), %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        seq,
                        types[seq % 3],
                        at,
                        at,
                        at,
                        symbols[seq % 4],
                        "engine",
                        json.dumps({"n": seq}),
                        bytes(32),
                        seq.to_bytes(32, "big"),
                    ),
                )
    return pg_dsn, now


def _sql(raw: str, start: datetime, end: datetime, event_type: str, symbol: str) -> str:
    def time_filter(m):
        return f"{m.group(1)} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"

    raw = re.sub(r"\$__timeFilter\((\w+)\)", time_filter, raw)
    raw = re.sub(
        r"\$__timeGroupAlias\((\w+), \$__interval\)",
        r'floor(extract(epoch from \1)/60)*60 AS "time"',
        raw,
    )
    raw = raw.replace("${event_type:regex}", event_type).replace("${symbol:regex}", symbol)
    assert "${" not in raw and "$__" not in raw, raw
    return raw


def _newest_events_sql() -> str:
    (sql,) = [s for _u, title, s in _sql_targets() if title == "Newest events (50)"]
    return sql


def test_every_audit_panel_query_runs_in_postgres(audit_db):
    dsn, now = audit_db
    start, end = now - timedelta(hours=3), now + timedelta(minutes=1)
    checked = 0
    with psycopg.connect(dsn) as conn:
        for _uid, title, raw in _sql_targets():
            rows = conn.execute(_sql(raw, start, end, ".*", ".*")).fetchall()
            assert rows, title
            checked += 1
        (d,) = [d for d in DASHBOARDS.values() if d["uid"] == "usdcop-audit"]
        symbol_query = _variables(d)["symbol"]["query"]
        offered = [r[0] for r in conn.execute(_sql(symbol_query, start, end, "", "")).fetchall()]
    assert offered == ["EURUSD", "USDCOP"], "only symbols of safe characters are offered"
    assert checked >= 6


def test_newest_events_are_the_50_newest_with_the_spec_columns(audit_db):
    dsn, now = audit_db
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(_sql(_newest_events_sql(), now - timedelta(hours=3), now, ".*", ".*"))
        rows = cur.fetchall()
        assert [c.name for c in cur.description] == COLUMNS
    assert [r[0] for r in rows] == list(range(120, 70, -1))
    assert rows[0][10] == (120).to_bytes(32, "big").hex() and rows[0][9] == "00" * 32


def test_newest_events_filter_by_type_and_symbol(audit_db):
    dsn, now = audit_db
    start = now - timedelta(hours=3)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            _sql(_newest_events_sql(), start, now, "TRADE_EXECUTED", "USDCOP")
        ).fetchall()
        assert rows and {(r[2], r[6]) for r in rows} == {("TRADE_EXECUTED", "USDCOP")}
        # Grafana's :regex format joins several values as (a|b).
        rows = conn.execute(
            _sql(_newest_events_sql(), start, now, "(SIGNAL_GENERATED|CONFIG_CHANGED)", ".*")
        ).fetchall()
        assert {r[2] for r in rows} == {"SIGNAL_GENERATED", "CONFIG_CHANGED"}
        assert None in {r[6] for r in rows}, "All keeps events without a symbol"
        # The time range filters received_at.
        rows = conn.execute(
            _sql(_newest_events_sql(), now - timedelta(minutes=10, seconds=30), now, ".*", ".*")
        ).fetchall()
        assert [r[0] for r in rows] == list(range(120, 110, -1))


# ---------------------------------------------------- query semantics, through promtool


def _panel_expr(uid: str, title: str) -> str:
    (d,) = [d for d in DASHBOARDS.values() if d["uid"] == uid]
    (panel,) = [p for p in a.all_panels(d) if p["title"] == title]
    (target,) = panel["targets"]
    return _substitute(target["expr"], _variables(d), "trading-api")


def test_status_encoding_shows_the_worst_state_per_service(tmp_path):
    """The status panels map -1/0/1/2 to unknown/healthy/degraded/unhealthy; replicas that
    disagree show the worse state."""
    promtool = require_tool("promtool")
    series = []
    states = {  # service -> state seen by sidecar a, by sidecar b
        "trading-api": ("healthy", "healthy"),
        "ml-analytics": ("degraded", "healthy"),
        "pipeline-api": ("unhealthy", "degraded"),
        "websocket": ("unknown", "unknown"),
    }
    for service, seen in states.items():
        for instance, state in zip(("a:9322", "b:9322"), seen, strict=True):
            for status in ("healthy", "degraded", "unhealthy", "unknown"):
                series.append(
                    {
                        "series": f'usdcop_service_status{{job="usdcop-exporter",instance="{instance}",'
                        f'service="{service}",status="{status}"}}',
                        "values": f"{int(status == state)}x5",
                    }
                )
    for instance, state in (("a:9322", "unhealthy"), ("b:9322", "degraded")):
        for status in ("healthy", "degraded", "unhealthy", "unknown"):
            series.append(
                {
                    "series": f'usdcop_overall_status{{job="usdcop-exporter",instance="{instance}",status="{status}"}}',
                    "values": f"{int(status == state)}x5",
                }
            )
    expected = {"trading-api": 0, "ml-analytics": 1, "pipeline-api": 2, "websocket": -1}
    doc = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": _panel_expr("usdcop-overview", "Service status"),
                        "eval_time": "2m",
                        "exp_samples": [
                            {"labels": f'{{service="{s}"}}', "value": v}
                            for s, v in expected.items()
                        ],
                    },
                    {
                        "expr": _panel_expr("usdcop-service", "Status"),
                        "eval_time": "2m",
                        "exp_samples": [{"labels": '{service="trading-api"}', "value": 0}],
                    },
                    {
                        "expr": _panel_expr("usdcop-overview", "Overall status"),
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "{}", "value": 2}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "dashboard-queries.test.yml"
    path.write_text(yaml.safe_dump(doc))
    res = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_overall_status_panel_shows_unknown_only_when_every_sidecar_is_unknown(tmp_path):
    """-1 (unknown) while no sidecar has a state; a sidecar with one outranks an unknown one."""
    promtool = require_tool("promtool")

    def overall(job: str, states: dict[str, str]) -> list[dict]:
        return [
            {
                "series": f'usdcop_overall_status{{job="{job}",instance="{instance}",status="{status}"}}',
                "values": f"{int(status == state)}x5",
            }
            for instance, state in states.items()
            for status in ("healthy", "degraded", "unhealthy", "unknown")
        ]

    expr = _panel_expr("usdcop-overview", "Overall status")
    cases = {
        "all-unknown": ({"a:9322": "unknown", "b:9322": "unknown"}, -1),
        "one-healthy": ({"a:9322": "unknown", "b:9322": "healthy"}, 0),
        "one-degraded": ({"a:9322": "unknown", "b:9322": "degraded"}, 1),
    }
    tests = [
        {
            "interval": "1m",
            "input_series": overall("usdcop-exporter", states),
            "promql_expr_test": [
                {"expr": expr, "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": value}]}
            ],
        }
        for states, value in cases.values()
    ]
    path = tmp_path / "overall-status.test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests}))
    res = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr


VALUE_PANELS = ("timeseries", "stat", "gauge", "bargauge")
TIME_UNITS = {"s", "ms", "µs", "ns", "m", "h", "d", "dtdurations", "dtdurationms", "clocks"}


@pytest.mark.parametrize("path", sorted(DASHBOARDS), ids=lambda p: p.name)
def test_every_value_panel_sets_a_unit(path):
    """Seconds, ratios and bytes never show as bare numbers: every value panel names its
    unit ("short" for counts, "none" for states, identifiers and unitless values)."""
    for panel in a.all_panels(DASHBOARDS[path]):
        if panel["type"] not in VALUE_PANELS:
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, f"{path.name}: panel {panel['id']} {panel['title']!r} sets no unit"
        names = {n for t in panel.get("targets", []) if t.get("expr")
                 for n in series_names(t["expr"])}
        durations = {n for n in names if re.search(r"_seconds(_bucket|_sum|_count)?$", n)
                     and "timestamp" not in n}
        if names and durations == names and not panel["title"].lower().startswith("rate"):
            assert unit in TIME_UNITS | {"ops", "reqps", "percentunit"}, (path.name, panel["title"])
