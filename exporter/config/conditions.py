"""Parsing condition strings like `[BODY].details.error_rate < 0.05` into model.Condition."""

from __future__ import annotations

import json
import math
import re

from ..units import UnitError, parse_duration
from .model import Condition

SUBJECTS = ("STATUS", "RESPONSE_TIME", "BODY", "CERTIFICATE_EXPIRATION")
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_ORDERING = ("<", "<=", ">", ">=")
_MAX_TEXT = 512

_SHAPE = re.compile(r"\s*\[(?P<subject>[^\]]*)\](?P<path>\S*?)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>.*?)\s*",
                    re.DOTALL)
_PATH_STEP = re.compile(r"\.([A-Za-z0-9_$@-]+)|\[(\d{1,9})\]")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_VALUE_FORMS = 'a number, a duration (800ms), a "string" in double quotes, true, false or null'


class ConditionError(ValueError):
    """A condition that does not parse; the message says which part is wrong."""


def _path(text: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_STEP.match(text, pos)
        if not match:
            raise ConditionError(f"cannot read the path {text!r} at {text[pos:pos + 20]!r}: write .field or [index]")
        key, index = match.groups()
        steps.append(int(index) if index is not None else key)
        pos = match.end()
    return tuple(steps)


def _value(text: str) -> tuple[object, str]:
    """The right-hand value and its kind: number, duration, string, bool or null."""
    if text in ("true", "false"):
        return text == "true", "bool"
    if text == "null":
        return None, "null"
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, str):
            raise ConditionError(f"cannot read the string {text[:40]}: it must be one JSON string in double quotes")
        return value, "string"
    if _NUMBER.fullmatch(text):
        number = float(text)
        if not math.isfinite(number):
            raise ConditionError(f"the number {text[:40]} is out of range")
        return number, "number"
    if _DURATION.fullmatch(text):
        try:
            return parse_duration(text), "duration"
        except UnitError as exc:
            raise ConditionError(f"invalid duration {text!r}: {exc.hint}") from None
    if text.startswith("'"):
        raise ConditionError("strings take double quotes: \"text\"")
    if not text:
        raise ConditionError(f"missing the value after the operator; expected {_VALUE_FORMS}")
    raise ConditionError(f"cannot read the value {text[:40]!r}; expected {_VALUE_FORMS}")


def parse_condition(text: str) -> Condition:
    """A Condition from its text; ConditionError names what is wrong."""
    if len(text) > _MAX_TEXT:
        raise ConditionError(f"longer than {_MAX_TEXT} characters")
    shape = _SHAPE.fullmatch(text)
    if not shape:
        raise ConditionError("expected '[SUBJECT] OPERATOR VALUE', e.g. [STATUS] == 200")
    subject, raw_path, op, raw_value = shape.group("subject", "path", "op", "value")
    if subject not in SUBJECTS:
        names = ", ".join(f"[{s}]" for s in SUBJECTS)
        raise ConditionError(f"unknown subject [{subject[:40]}]; expected one of {names}")
    if raw_path and subject != "BODY":
        raise ConditionError(f"only [BODY] takes a path, not [{subject}]")
    path = _path(raw_path)
    value, kind = _value(raw_value)
    if op in _ORDERING and kind not in ("number", "duration"):
        raise ConditionError(f"operator {op} compares numbers or durations, not {kind}")
    if subject == "STATUS" and not (kind == "number" and float(value).is_integer() and 100 <= value <= 599):
        raise ConditionError("[STATUS] compares with an HTTP status code from 100 to 599")
    if subject in ("RESPONSE_TIME", "CERTIFICATE_EXPIRATION") and kind != "duration":
        example = "800ms" if subject == "RESPONSE_TIME" else "14d"
        raise ConditionError(f"[{subject}] compares with a duration like {example}, got {kind}")
    return Condition(text=text.strip(), subject=subject, path=path, op=op, value=value)
