"""What Grafana would send: panel queries with variables and macros substituted."""

from __future__ import annotations

import re
from datetime import datetime

from tests.ops import artefacts as a

# Grafana's interval macros as they would come out for a 1 s scrape interval and the
# few minutes the stack runs: $__rate_interval is at least four scrape intervals.
PROMQL_MACROS = {"$__rate_interval": "1m", "$__interval": "1s", "$__range": "5m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_LEFTOVER = re.compile(r"\$[{\w]")  # a `$` before `'` or `)` is a regex anchor, not a variable


def variables(dashboard: dict) -> dict[str, dict]:
    """The dashboard's template variables by name."""
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def prom_targets(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every Prometheus query of a dashboard."""
    return [(p["title"], t["expr"]) for p in a.all_panels(dashboard)
            for t in p.get("targets", []) if "expr" in t]


def sql_targets(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, rawSql) of every SQL query of a dashboard."""
    return [(p["title"], t["rawSql"]) for p in a.all_panels(dashboard)
            for t in p.get("targets", []) if "rawSql" in t]


def _variable_value(name: str, fmt: str | None, defined: dict[str, dict],
                    single: dict[str, str]) -> str:
    if name not in defined:
        raise KeyError(f"unknown variable ${name}")
    v = defined[name]
    if v.get("multi"):
        return v.get("allValue") or ".*"  # "All", the dashboards' default selection
    if name not in single:
        raise KeyError(f"no value chosen for the single-value variable ${name}")
    value = single[name]
    return re.escape(value) if fmt == "regex" else value


def substitute_promql(expr: str, defined: dict[str, dict], single: dict[str, str]) -> str:
    """`expr` with Grafana's interval macros and the dashboard variables filled in."""
    for macro, value in PROMQL_MACROS.items():
        expr = expr.replace(macro, value)

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        return _variable_value(name, m.group(2), defined, single)

    out = _VARIABLE.sub(repl, expr)
    if _LEFTOVER.search(out):
        raise ValueError(f"unsubstituted macro in {out!r}")
    return out


def substitute_sql(sql: str, start: datetime, end: datetime, defined: dict[str, dict],
                   single: dict[str, str] | None = None, interval_seconds: int = 60) -> str:
    """`sql` as Grafana's Postgres data source would run it for the range start..end."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 lambda m: f"{m.group(1)} BETWEEN '{start.isoformat()}'::timestamptz"
                           f" AND '{end.isoformat()}'::timestamptz", sql)
    sql = re.sub(r"\$__timeGroupAlias\((\w+), \$__interval\)",
                 lambda m: f"floor(extract(epoch from {m.group(1)})/{interval_seconds})"
                           f"*{interval_seconds} AS \"time\"", sql)
    if "$__" in sql:
        raise ValueError(f"a Grafana macro this test does not know: {sql!r}")
    out = _VARIABLE.sub(
        lambda m: _variable_value(m.group(1) or m.group(3), m.group(2), defined, single or {}),
        sql)
    if _LEFTOVER.search(out):
        raise ValueError(f"unsubstituted variable in {out!r}")
    return out
