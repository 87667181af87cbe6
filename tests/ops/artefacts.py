"""Loading the shipped monitoring files: rules, promtool tests, dashboards, runbook."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
PROVISIONING_DIR = REPO / "grafana" / "provisioning"
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_URL_PREFIX = "https://github.com/usdcop/usdcop-exporter/blob/main/docs/runbook.md#"

# docs/runbook.md: every alert by name, with its severity.
SPEC_ALERTS = {
    "UsdcopServiceUnhealthy": "critical",
    "UsdcopServiceDegraded": "warning",
    "UsdcopProbeStale": "warning",
    "UsdcopScheduleLagHigh": "warning",
    "UsdcopExporterDown": "critical",
    "UsdcopRedisMirrorDown": "critical",
    "UsdcopRedisMirrorStale": "warning",
    "UsdcopSignalStale": "warning",
    "UsdcopFinancialMetricsStale": "warning",
    "UsdcopAuditWriteFailing": "critical",
    "UsdcopAuditSpoolBacklog": "warning",
    "UsdcopAuditChainBroken": "critical",
    "UsdcopAuditCheckpointOld": "warning",
    "UsdcopCertificateExpiringSoon": "warning",
    "UsdcopCertificateExpiring": "critical",
    "UsdcopCacheHitRatioLow": "warning",
    "UsdcopServiceErrorRatioHigh": "warning",
    "UsdcopConfigReloadFailed": "warning",
    "Watchdog": "none",
}
# The `for:` durations docs/runbook.md gives.
SPEC_FOR = {
    "UsdcopServiceUnhealthy": "2m",
    "UsdcopServiceDegraded": "5m",
    "UsdcopScheduleLagHigh": "10m",
    "UsdcopCacheHitRatioLow": "15m",
    "UsdcopServiceErrorRatioHigh": "10m",
}


@dataclass(frozen=True)
class Rule:
    """One alerting or recording rule and where it came from."""

    file: Path
    group: str
    body: dict

    @property
    def alert(self) -> str | None:
        return self.body.get("alert")

    @property
    def record(self) -> str | None:
        return self.body.get("record")

    @property
    def expr(self) -> str:
        return str(self.body["expr"])


def rule_files() -> list[Path]:
    """The rule files Prometheus loads (prometheus.yml says rules/*.yml)."""
    return sorted(RULES_DIR.glob("*.yml"))


def rules() -> list[Rule]:
    """Every rule of every rule file."""
    out = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for body in group["rules"]:
                out.append(Rule(path, group["name"], body))
    return out


def alerts() -> list[Rule]:
    """The alerting rules (an alert name may have several rules)."""
    return [r for r in rules() if r.alert]


def recorded_names() -> set[str]:
    """Names of the series the recording rules produce."""
    return {r.record for r in rules() if r.record}


def rule_test_files() -> list[Path]:
    """promtool unit test files."""
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def parse_duration(text: str) -> int:
    """Seconds of a Prometheus duration such as 1h30m or 90s."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a duration: {text!r}")
    return int(sum(int(n) * units[u] for n, u in parts))


def dashboards() -> dict[Path, dict]:
    """Every dashboard JSON, parsed."""
    return {p: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def all_panels(dashboard: dict) -> list[dict]:
    """Panels, including those nested in collapsed rows."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors() -> dict[str, str]:
    """Anchor -> heading text of every heading in the runbook."""
    out = {}
    for line in RUNBOOK.read_text().splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            out[github_anchor(m.group(1))] = m.group(1)
    return out
