"""Alerting and recording rules: promtool, documented names, annotations, runbook, tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict

import pytest
import yaml

from tests.ops import artefacts as a
from tests.ops.metric_docs import series_labels
from tests.ops.promql import grouping_labels, selector_labels, series_names
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow


def _run(*cmd: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_prometheus_config_and_its_rules():
    promtool = require_tool("promtool")
    # Run from the repository root as the README does; rule_files resolve relative to
    # the config file, which is what the compose container relies on too.
    res = _run(promtool, "check", "config", "prometheus/prometheus.yml", cwd=a.REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    found = re.search(r"SUCCESS: (\d+) rule files found", res.stdout + res.stderr)
    assert found and int(found.group(1)) == len(a.rule_files()) > 0, res.stdout + res.stderr


def test_promtool_check_rules():
    promtool = require_tool("promtool")
    res = _run(promtool, "check", "rules", *map(str, a.rule_files()))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_unit_tests_pass():
    promtool = require_tool("promtool")
    files = a.rule_test_files()
    assert files
    res = _run(promtool, "test", "rules", *map(str, files))
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_spec_alert_exists_with_its_severity_and_hold():
    by_name = defaultdict(list)
    for rule in a.alerts():
        by_name[rule.alert].append(rule)
    missing = set(a.SPEC_ALERTS) - set(by_name)
    assert not missing, f"alerts named by docs/runbook.md but not defined: {sorted(missing)}"
    for name, severity in a.SPEC_ALERTS.items():
        for rule in by_name[name]:
            if _for_non_critical(rule):
                assert rule.body["labels"]["severity"] == "warning", name
            else:
                assert rule.body["labels"]["severity"] == severity, name
    for name, hold in a.SPEC_FOR.items():
        assert {r.body.get("for") for r in by_name[name]} == {hold}, name
    assert by_name["Watchdog"][0].expr.strip() == "vector(1)"


_NON_CRITICAL = 'and on (service) usdcop_service_info{critical="false"}'
_CRITICAL = 'unless on (service) usdcop_service_info{critical="false"}'


def _for_non_critical(rule) -> bool:
    """The rule only fires for services marked critical: false."""
    return _NON_CRITICAL in " ".join(rule.expr.split())


def test_paging_service_alerts_page_only_for_critical_services():
    """Every critical alert on a service's series has a twin for critical: false services
    that only warns, with the same hold; the critical one leaves those services out."""
    by_name = defaultdict(list)
    for rule in a.alerts():
        by_name[rule.alert].append(rule)
    paging = {"UsdcopServiceUnhealthy", "UsdcopCertificateExpiring", "UsdcopServiceErrorBudgetBurn"}
    for name in paging:
        critical = [r for r in by_name[name] if r.body["labels"]["severity"] == "critical"]
        assert critical, name
        for rule in critical:
            assert _CRITICAL in " ".join(rule.expr.split()), name
            twins = [r for r in by_name[name] if _for_non_critical(r)
                     and r.body.get("for") == rule.body.get("for")
                     and r.body["labels"].get("long") == rule.body["labels"].get("long")]
            assert [t.body["labels"]["severity"] for t in twins] == ["warning"], name
    for rule in a.alerts():
        if rule.body["labels"].get("severity") != "critical" or rule.alert in paging:
            continue
        labels = set()
        for metric in series_names(rule.expr):
            labels |= series_labels().get(metric) or set()
        assert "service" not in labels, f"{rule.alert} pages per service without a critical twin"


def test_alerts_carry_severity_summary_description_and_runbook_url():
    for rule in a.alerts():
        labels, ann = rule.body.get("labels", {}), rule.body.get("annotations", {})
        assert labels.get("severity") in {"critical", "warning", "info", "none"}, rule.alert
        assert set(ann) == {"summary", "description", "runbook_url"}, rule.alert
        assert ann["runbook_url"] == a.RUNBOOK_URL_PREFIX + rule.alert.lower(), rule.alert
        assert re.fullmatch(r"(Usdcop[A-Z][A-Za-z]+|Watchdog)", rule.alert), rule.alert


def test_per_service_alerts_name_the_service():
    """An alert whose series carry `service` names it in summary and description."""
    per_service = 0
    for rule in a.alerts():
        selects_service = any(
            (labels := series_labels().get(name)) and "service" in labels
            for name in series_names(rule.expr)
        ) or rule.expr.lstrip().startswith("service:")
        if not selects_service:
            continue
        per_service += 1
        for key in ("summary", "description"):
            assert "{{ $labels.service }}" in rule.body["annotations"][key], (rule.alert, key)
    assert per_service >= 7


def test_rules_only_name_spec_metrics_and_their_labels():
    known = series_labels()
    recorded = a.recorded_names()
    for rule in a.rules():
        for name in series_names(rule.expr):
            assert name in known or name in recorded, (
                f"{rule.file.name}: {rule.alert or rule.record} uses {name!r}, "
                "which is neither in docs/metrics.md nor a recording rule"
            )
        for metric, label, _op, _value in selector_labels(rule.expr):
            allowed = known.get(metric)
            if metric in known and allowed is not None:
                assert label in allowed, (
                    f"{rule.alert or rule.record}: {metric} has no label {label!r}"
                )


def test_recording_rule_names_follow_level_metric_operations():
    for name in a.recorded_names():
        level, metric, ops = name.split(":")
        assert level and ops, name
        assert metric.startswith("usdcop_"), name


def test_recording_rules_cover_quantiles_and_availability_windows():
    records = defaultdict(set)
    for rule in a.rules():
        if rule.record:
            records[rule.record].add(rule.body.get("labels", {}).get("quantile"))
    for name in (
        "service:usdcop_service_probe_duration_seconds:quantile_rate5m",
        "service_operation:usdcop_operation_latency_seconds:quantile_rate5m",
    ):
        assert records[name] == {"0.5", "0.95", "0.99"}, name
    for window in ("5m", "1h", "1d", "30d"):
        assert f"service:usdcop_service_availability:ratio_rate{window}" in records


def test_every_alert_has_a_runbook_section_with_that_exact_anchor():
    anchors = a.runbook_anchors()
    for name in {r.alert for r in a.alerts()}:
        assert anchors.get(name.lower()) == name, f"docs/runbook.md has no '## {name}' section"


def test_runbook_internal_links_resolve():
    anchors = a.runbook_anchors()
    links = re.findall(r"\]\(#([^)]+)\)", a.RUNBOOK.read_text())
    assert links
    for link in links:
        assert link in anchors, f"runbook links to #{link}, which is not a heading"


def _unit_tests() -> list[dict]:
    out = []
    for path in a.rule_test_files():
        out.extend(yaml.safe_load(path.read_text())["tests"])
    return out


def test_every_alert_has_a_firing_unit_test_with_exact_labels_and_annotations():
    firing = defaultdict(list)
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            for exp in case["exp_alerts"]:
                firing[case["alertname"]].append(exp)
    for rule in a.alerts():
        cases = firing.get(rule.alert)
        assert cases, f"no promtool test expects {rule.alert} to fire"
        severities = {c["exp_labels"].get("severity") for c in cases}
        assert rule.body["labels"]["severity"] in severities, rule.alert
        for case in cases:
            assert set(case["exp_annotations"]) == {"summary", "description", "runbook_url"}
            assert "severity" in case["exp_labels"]


def test_every_alert_has_a_silent_unit_test():
    silent = {
        case["alertname"]
        for test in _unit_tests()
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"] == []
    }
    for rule in a.alerts():
        if rule.alert != "Watchdog":
            assert rule.alert in silent, f"no promtool test expects {rule.alert} to be silent"


def test_unit_tests_notice_a_missing_hold(tmp_path):
    """Without its `for:`, every held alert fires too early and its unit test fails."""
    promtool = require_tool("promtool")
    shutil.copytree(a.PROMETHEUS_DIR / "tests", tmp_path / "tests")
    (tmp_path / "rules").mkdir()
    for path in a.rule_files():
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                rule.pop("for", None)
        (tmp_path / "rules" / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    res = _run(
        promtool, "test", "rules", *sorted(str(p) for p in (tmp_path / "tests").glob("*.yml"))
    )
    assert res.returncode != 0
    output = res.stdout + res.stderr
    failed = set(re.findall(r"alertname: (\w+), time:", output))
    held = {r.alert for r in a.alerts() if a.parse_duration(r.body.get("for", "0s")) > 0}
    assert held <= failed, f"held alerts whose tests did not notice: {sorted(held - failed)}"


@pytest.mark.parametrize("path", a.rule_test_files(), ids=lambda p: p.name)
def test_unit_test_files_load_only_shipped_rule_files(path):
    doc = yaml.safe_load(path.read_text())
    for ref in doc["rule_files"]:
        assert (path.parent / ref).resolve().parent == a.RULES_DIR, ref


def test_redis_alerts_are_guarded_for_embedded_mode():
    """Alerts on Redis series cannot fire when usdcop_redis_up is absent (promtool proves the
    behaviour; this keeps the guard from being dropped from the mirror-staleness rule)."""
    by_name = {r.alert: r for r in a.alerts()}
    assert "usdcop_redis_up" in by_name["UsdcopRedisMirrorStale"].expr
    assert "absent(" not in by_name["UsdcopRedisMirrorDown"].expr
    assert grouping_labels(by_name["UsdcopRedisMirrorStale"].expr) == {"job", "instance"}
