"""The metric families of docs/metrics.md: what rules and dashboards may name.

docs/metrics.md's table is the one list (tests/ops/test_metrics_doc.py holds it equal to a
live sidecar's registry). A name a rule or dashboard uses that is not there is a typo or an
invented metric, and fails the tests.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from tests.support.docs import ROOT, code_spans, section, table

TYPES = ("gauge", "counter", "histogram")

# Series Prometheus makes itself.
PROMETHEUS_OWN: dict[str, frozenset[str] | None] = {
    "up": frozenset(),
    "ALERTS": None,  # any label of any alert
}

TARGET_LABELS = frozenset({"job", "instance"})


@dataclass(frozen=True)
class Family:
    """One row of the table."""

    name: str
    type: str
    labels: frozenset[str]
    open_labels: bool  # the row says "+ …": configured labels come on top


@functools.cache
def documented_families() -> dict[str, Family]:
    """name (counters with `_total`) → Family, from the table under docs/metrics.md's
    `## Metric families` heading."""
    out: dict[str, Family] = {}
    for row in table(section(ROOT / "docs" / "metrics.md", "Metric families")):
        names = code_spans(row["metric"])
        kind = row["type"].split()[0]
        if len(names) != 1 or kind not in TYPES:
            raise ValueError(f"docs/metrics.md: bad row {row}")
        name = names[0]
        if name in out:
            raise ValueError(f"docs/metrics.md: {name} listed twice")
        if (kind == "counter") != name.endswith("_total"):
            raise ValueError(f"docs/metrics.md: {name}: `_total` is for counters only")
        cell = re.sub(r"\([^)]*\)", "", row["labels"])  # "(values …)" names no label
        out[name] = Family(name, kind, frozenset(code_spans(cell)), "+" in cell)
    return out


def series_labels() -> dict[str, frozenset[str] | None]:
    """Every series name a query may select, with its labels (None: any label)."""
    out: dict[str, frozenset[str] | None] = {}
    for family in documented_families().values():
        labels = None if family.open_labels else family.labels | TARGET_LABELS
        if family.type == "histogram":
            out[family.name + "_bucket"] = None if labels is None else labels | {"le"}
            out[family.name + "_sum"] = labels
            out[family.name + "_count"] = labels
        else:
            out[family.name] = labels
    for name, labels in PROMETHEUS_OWN.items():
        out[name] = None if labels is None else labels | TARGET_LABELS
    return out
