"""Evaluating conditions against the facts one probe collected, keeping every outcome.

Facts are a mapping: `STATUS` (int), `RESPONSE_TIME` (seconds), `BODY` (parsed JSON or
text) and `CERTIFICATE_EXPIRATION` (seconds until the certificate expires). A fact that
is absent, or a `[BODY]` path that leads nowhere, fails its condition with "missing".
Numbers compare as numbers; `==`/`!=` also compare strings, booleans and null (same type
only); ordering needs numbers on both sides. Nothing is coerced: `"200"` is not `200`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Mapping
from typing import Any

from ..config.model import Condition
from ..jsontypes import json_type_name
from .result import ConditionOutcome

SUBJECTS = ("STATUS", "RESPONSE_TIME", "BODY", "CERTIFICATE_EXPIRATION")

_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SHOWN = 80  # characters of a value kept in an outcome's detail


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = str(int(value))
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _where(cond: Condition, depth: int) -> str:
    out = f"[{cond.subject}]"
    for step in cond.path[:depth]:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def resolve(cond: Condition, facts: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The value a condition's left side names, or (MISSING, why)."""
    value = facts.get(cond.subject, MISSING)
    if value is MISSING:
        return MISSING, f"missing [{cond.subject}]"
    for depth, step in enumerate(cond.path, start=1):
        if isinstance(step, int) and isinstance(value, list) and 0 <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return MISSING, f"missing {_where(cond, depth)}"
    return value, None


def compare(actual: Any, op: str, expected: Any) -> tuple[bool, str | None]:
    """Whether `actual op expected` holds; the second item says why it could not be compared."""
    fn = _OPS.get(op)
    if fn is None:
        return False, f"unknown operator {op!r}"
    a_kind, e_kind = json_type_name(actual), json_type_name(expected)
    if a_kind != e_kind:
        return False, f"cannot compare {a_kind} {_show(actual)} with {e_kind}"
    if op not in ("==", "!=") and a_kind != "number":
        return False, f"{op} needs numbers, saw {a_kind} {_show(actual)}"
    return bool(fn(actual, expected)), None


def evaluate_one(cond: Condition, facts: Mapping[str, Any]) -> ConditionOutcome:
    """The outcome of one condition; the detail shows the value seen or why it failed."""
    actual, missing = resolve(cond, facts)
    if missing:
        return ConditionOutcome(cond.text, False, missing)
    held, problem = compare(actual, cond.op, cond.value)
    if problem:
        return ConditionOutcome(cond.text, False, problem)
    return ConditionOutcome(cond.text, held, f"saw {_show(actual)}")


def evaluate(conditions: Iterable[Condition], facts: Mapping[str, Any]) -> list[ConditionOutcome]:
    """Every condition's outcome, in order; all of them are evaluated, none short-circuits."""
    return [evaluate_one(cond, facts) for cond in conditions]
