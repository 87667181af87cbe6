"""Condition strings parse into model.Condition, or fail naming the part that is wrong."""

from __future__ import annotations

import pytest

from exporter.config import Condition, ConditionError, parse_condition


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[STATUS] == 200", Condition("[STATUS] == 200", "STATUS", (), "==", 200.0)),
        ("[STATUS]!=503", Condition("[STATUS]!=503", "STATUS", (), "!=", 503.0)),
        ("[RESPONSE_TIME] < 800ms", Condition("[RESPONSE_TIME] < 800ms", "RESPONSE_TIME", (), "<", 0.8)),
        ("[RESPONSE_TIME] <= 1m30s", Condition("[RESPONSE_TIME] <= 1m30s", "RESPONSE_TIME", (), "<=", 90.0)),
        ("[CERTIFICATE_EXPIRATION] > 14d", Condition("[CERTIFICATE_EXPIRATION] > 14d", "CERTIFICATE_EXPIRATION", (), ">", 1209600.0)),
        ("[BODY].details.error_rate < 0.05", Condition("[BODY].details.error_rate < 0.05", "BODY", ("details", "error_rate"), "<", 0.05)),
        ("[BODY].a.b[0] >= -1.5e3", Condition("[BODY].a.b[0] >= -1.5e3", "BODY", ("a", "b", 0), ">=", -1500.0)),
        ("[BODY][2].ok == true", Condition("[BODY][2].ok == true", "BODY", (2, "ok"), "==", True)),
        ('[BODY].status == "UP"', Condition('[BODY].status == "UP"', "BODY", ("status",), "==", "UP")),
        ('[BODY].msg != "a \\"quoted\\" == word"', Condition('[BODY].msg != "a \\"quoted\\" == word"', "BODY", ("msg",), "!=", 'a "quoted" == word')),
        ("[BODY].error == null", Condition("[BODY].error == null", "BODY", ("error",), "==", None)),
        ('[BODY] == "OK"', Condition('[BODY] == "OK"', "BODY", (), "==", "OK")),
        ("  [BODY].uptime > 1h  ", Condition("[BODY].uptime > 1h", "BODY", ("uptime",), ">", 3600.0)),
    ],
)
def test_good_conditions(text: str, expected: Condition) -> None:
    assert parse_condition(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected '[SUBJECT] OPERATOR VALUE', e.g. [STATUS] == 200"),
        ("STATUS == 200", "expected '[SUBJECT] OPERATOR VALUE', e.g. [STATUS] == 200"),
        ("[STATUS] = 200", "expected '[SUBJECT] OPERATOR VALUE', e.g. [STATUS] == 200"),
        ("[status] == 200", "unknown subject [status]; expected one of [STATUS], [RESPONSE_TIME], [BODY], [CERTIFICATE_EXPIRATION]"),
        ("[STATUS] ==", "missing the value after the operator; expected a number, a duration (800ms), a \"string\" in double quotes, true, false or null"),
        ("[STATUS] == 2xx", "cannot read the value '2xx'; expected a number, a duration (800ms), a \"string\" in double quotes, true, false or null"),
        ("[STATUS] == 99", "[STATUS] compares with an HTTP status code from 100 to 599"),
        ("[STATUS] == 200.5", "[STATUS] compares with an HTTP status code from 100 to 599"),
        ('[STATUS] == "200"', "[STATUS] compares with an HTTP status code from 100 to 599"),
        ("[RESPONSE_TIME] < 800", "[RESPONSE_TIME] compares with a duration like 800ms, got number"),
        ("[CERTIFICATE_EXPIRATION] > 14", "[CERTIFICATE_EXPIRATION] compares with a duration like 14d, got number"),
        ("[RESPONSE_TIME] < 1s1m", "invalid duration '1s1m': units must go from largest to smallest, each once"),
        ("[BODY].ok < true", "operator < compares numbers or durations, not bool"),
        ("[BODY].v >= \"1.2\"", "operator >= compares numbers or durations, not string"),
        ("[BODY].s == 'UP'", 'strings take double quotes: "text"'),
        ('[BODY].s == "UP', 'cannot read the string "UP: it must be one JSON string in double quotes'),
        ("[BODY].a..b == 1", "cannot read the path '.a..b' at '..b': write .field or [index]"),
        ("[BODY].a[x] == 1", "cannot read the path '.a[x]' at '[x]': write .field or [index]"),
        ("[STATUS].code == 200", "only [BODY] takes a path, not [STATUS]"),
        ("[BODY].n == 1e999", "the number 1e999 is out of range"),
        ("[BODY].n == nan", "cannot read the value 'nan'; expected a number, a duration (800ms), a \"string\" in double quotes, true, false or null"),
        ("[BODY] == " + "x" * 600, "longer than 512 characters"),
    ],
)
def test_bad_conditions(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert str(info.value) == message
