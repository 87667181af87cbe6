"""Conditions against probe facts: numbers as numbers, missing fields, type mismatches."""

import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config.model import Condition
from exporter.health.conditions import compare, evaluate, evaluate_one

BODY = {"details": {"error_rate": 0.02, "uptime": 86400}, "items": [{"id": 7}, {"id": "x"}],
        "ok": True, "none": None, "name": "api", "text_number": "42"}
FACTS = {"STATUS": 200, "RESPONSE_TIME": 0.25, "BODY": BODY, "CERTIFICATE_EXPIRATION": 40 * 86400.0}


def cond(subject, op, value, *path):
    shown = f"[{subject}]" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return Condition(text=f"{shown} {op} {value!r}", subject=subject, path=tuple(path), op=op, value=value)


@pytest.mark.parametrize(
    ("c", "success", "detail"),
    [
        (cond("STATUS", "==", 200.0), True, "saw 200"),
        (cond("STATUS", "!=", 200.0), False, "saw 200"),
        (cond("STATUS", "<", 300.0), True, "saw 200"),
        (cond("RESPONSE_TIME", "<", 0.8), True, "saw 0.25"),
        (cond("RESPONSE_TIME", ">=", 0.8), False, "saw 0.25"),
        (cond("CERTIFICATE_EXPIRATION", ">", 30 * 86400.0), True, "saw 3456000"),
        (cond("BODY", "<", 0.05, "details", "error_rate"), True, "saw 0.02"),
        (cond("BODY", ">", 0.05, "details", "error_rate"), False, "saw 0.02"),
        (cond("BODY", "==", 86400.0, "details", "uptime"), True, "saw 86400"),
        (cond("BODY", "==", 7.0, "items", 0, "id"), True, "saw 7"),
        (cond("BODY", "==", "x", "items", 1, "id"), True, 'saw "x"'),
        (cond("BODY", "==", True, "ok"), True, "saw true"),
        (cond("BODY", "==", False, "ok"), False, "saw true"),
        (cond("BODY", "==", None, "none"), True, "saw null"),
        (cond("BODY", "!=", None, "name"), False, "cannot compare string \"api\" with null"),
        (cond("BODY", "==", "api", "name"), True, 'saw "api"'),
        (cond("BODY", "==", 42.0, "text_number"), False, 'cannot compare string "42" with number'),
        (cond("BODY", "<", "b", "name"), False, '< needs numbers, saw string "api"'),
        (cond("BODY", "==", 1.0, "ok"), False, "cannot compare boolean true with number"),
        (cond("BODY", "<", 1.0, "details"), False, "cannot compare object"),
        (cond("BODY", "==", 1.0, "details", "missing"), False, "missing [BODY].details.missing"),
        (cond("BODY", "==", 1.0, "items", 5, "id"), False, "missing [BODY].items[5]"),
        (cond("BODY", "==", 1.0, "items", -1), False, "missing [BODY].items[-1]"),
        (cond("BODY", "==", 1.0, "name", "deeper"), False, "missing [BODY].name.deeper"),
        (cond("BODY", "==", 1.0, "details", 0), False, "missing [BODY].details[0]"),
    ],
)
def test_outcomes(c, success, detail):
    out = evaluate_one(c, FACTS)
    assert (out.condition, out.success) == (c.text, success)
    assert out.detail.startswith(detail), out.detail


def test_missing_subject():
    out = evaluate_one(cond("CERTIFICATE_EXPIRATION", ">", 1.0), {"STATUS": 200})
    assert (out.success, out.detail) == (False, "missing [CERTIFICATE_EXPIRATION]")


def test_body_alone_compares_text():
    facts = {"BODY": "OK"}
    assert evaluate_one(cond("BODY", "==", "OK"), facts).success
    assert not evaluate_one(cond("BODY", "==", "NOT OK"), facts).success
    out = evaluate_one(cond("BODY", "==", "OK", "field"), facts)
    assert (out.success, out.detail) == (False, "missing [BODY].field")


def test_every_condition_is_evaluated_in_order():
    conds = [cond("STATUS", "==", 500.0), cond("BODY", "==", "api", "name"), cond("BODY", ">", 1.0, "nope")]
    outs = evaluate(conds, FACTS)
    assert [o.condition for o in outs] == [c.text for c in conds]
    assert [o.success for o in outs] == [False, True, False]
    assert evaluate([], FACTS) == []


def test_long_values_are_shortened_in_details():
    out = evaluate_one(cond("BODY", "==", "y", "long"), {"BODY": {"long": "z" * 500}})
    assert not out.success and len(out.detail) < 150 and out.detail.endswith("...")


def test_unknown_operator_fails():
    assert compare(1, "=~", 1) == (False, "unknown operator '=~'")


NUMBERS = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False))
OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge}


@given(NUMBERS, st.sampled_from(sorted(OPS)), NUMBERS)
def test_numbers_compare_as_numbers(a, op, b):
    assert compare(a, op, b) == (OPS[op](a, b), None)
