"""Just enough PromQL reading to find the series and label names an expression uses."""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")
_SELECTOR = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')

KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
}


def series_names(expr: str) -> set[str]:
    """Metric names an expression selects (function and keyword names excluded)."""
    names: set[str] = set()
    for metric, body in _SELECTOR.findall(expr):
        for label, _op, value in _MATCHER.findall(body):
            if label == "__name__":
                names.update(value.split("|"))
        if metric:
            names.add(metric)
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)
    bare = _GROUPING.sub(" ", bare)
    bare = _RANGE.sub(" ", bare)
    for ident, call in _IDENT.findall(bare):
        if call or ident.lower() in KEYWORDS:
            continue
        names.add(ident)
    return names


def selector_labels(expr: str) -> list[tuple[str | None, str, str, str]]:
    """(metric, label, operator, value) of every label matcher in the expression."""
    out = []
    for metric, body in _SELECTOR.findall(expr):
        for label, op, value in _MATCHER.findall(body):
            out.append((metric or None, label, op, value))
    return out


def grouping_labels(expr: str) -> set[str]:
    """Label names used in by/without/on/ignoring/group_* clauses."""
    labels: set[str] = set()
    for _kw, body in _GROUPING.findall(_STRING.sub('""', expr)):
        labels.update(x.strip() for x in body.split(",") if x.strip())
    return labels


def ranges(expr: str) -> list[str]:
    """The contents of every [...] range or subquery in the expression."""
    return [m[1:-1] for m in _RANGE.findall(_STRING.sub('""', expr))]
