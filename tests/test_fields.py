"""The field validators every layer shares: each refusal is a FieldError naming the path."""

import json
import math
import re

import pytest

from exporter import fields
from exporter.fields import MAX_DEPTH, FieldError


def refusal(call, *args, **kwargs) -> FieldError:
    with pytest.raises(FieldError) as err:
        call(*args, **kwargs)
    return err.value


def nested(levels: int):
    """A value `levels` deep, a scalar counting as one level."""
    value = 1
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_a_field_error_names_its_path_and_says_what_is_wrong():
    err = FieldError("records[3].service", "must be a string, got number")
    assert (err.path, err.message, err.too_large) == ("records[3].service",
                                                      "must be a string, got number", False)
    assert str(err) == err.sentence == "records[3].service must be a string, got number"
    assert FieldError("", "contains a NUL character").sentence == "contains a NUL character"
    assert FieldError("data", "is larger than 64 KiB", too_large=True).too_large is True


def test_paths_join_keys_and_indexes():
    assert fields.join("", "service") == "service"
    assert fields.join("records", 3) == "records[3]"
    assert fields.join("records[3]", "service") == "records[3].service"


def test_a_field_is_read_checked_or_absent():
    obj = {"price": 4100, "note": None}
    assert fields.get(obj, "price", "signal.price", fields.number, lo=0.0) == 4100.0
    assert fields.get(obj, "note", "signal.note", fields.string, max_len=8) is None
    assert fields.get(obj, "gone", "signal.gone", fields.string, max_len=8) is None
    err = refusal(fields.get, obj, "note", "signal.note", fields.string, required=True, max_len=8)
    assert (err.path, err.message) == ("signal.note", fields.REQUIRED)
    err = refusal(fields.get, obj, "price", "signal.price", fields.number, hi=100.0)
    assert (err.path, err.message) == ("signal.price", "must be <= 100")


def test_the_first_unknown_key_is_found():
    assert fields.unknown_key({"a": 1, "z": 2, "y": 3}, {"a"}) == "z"
    assert fields.unknown_key({"a": 1}, {"a", "b"}) is None


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (5, {}, "must be a string, got number"),
        (None, {}, "must be a string, got null"),
        (5, {"typed": False}, "must be a string"),
        ("", {"nonempty": True}, "must not be empty"),
        ("abcde", {"max_len": 4}, "is longer than 4 characters"),
        ("a\x00b", {"nul": True}, "contains a NUL character"),
        ("HOLD", {"choices": ("BUY", "SELL")}, "must be one of BUY|SELL, got 'HOLD'"),
        ("abc", {"pattern": re.compile(r"[0-9]+")}, "must match [0-9]+"),
        ("abc", {"pattern": re.compile(r"[0-9]+"), "rule": "^[0-9]+$", "got": True},
         "must match ^[0-9]+$, got 'abc'"),
        ("a\x00b", {"single_line": True}, "contains a NUL character"),
        ("a\ud800b", {"single_line": True}, "contains a lone UTF-16 surrogate"),
        ("a\nb", {"single_line": True}, "contains a control character or line separator"),
        ("a\tb", {"single_line": True}, "contains a control character or line separator"),
        ("a\u2028b", {"single_line": True}, "contains a control character or line separator"),
        ("a\u2029b", {"single_line": True}, "contains a control character or line separator"),
        ("a\x85b", {"single_line": True}, "contains a control character or line separator"),
    ],
)
def test_string_refusals_are_named(value, kwargs, message):
    kwargs.setdefault("max_len", 64)
    err = refusal(fields.string, value, "x.name", **kwargs)
    assert (err.path, err.message, err.too_large) == ("x.name", message, False)


def test_strings_within_the_rules_pass_unchanged():
    assert fields.string("ok", "f", max_len=2) == "ok"
    assert fields.string("BUY", "f", max_len=8, choices=("BUY",), nonempty=True, nul=True) == "BUY"
    assert fields.string("a\u00e9\u4e2d", "f", max_len=8, single_line=True) == "a\u00e9\u4e2d"
    # Without the flags, control characters are the caller's business.
    assert fields.string("a\nb\x00", "f", max_len=8) == "a\nb\x00"


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        ("1", {}, "must be a number, got string"),
        (True, {}, "must be a number, got boolean"),
        ([], {}, "must be a number, got array"),
        (10**400, {}, "is out of range"),
        (math.nan, {}, "must be finite"),
        (-math.inf, {}, "must be finite"),
        (-1, {"lo": 0.0}, "must be >= 0"),
        (0, {"lo": 0.0, "lo_open": True}, "must be > 0"),
        (2, {"hi": 1.0}, "must be <= 1"),
        (2.5, {"hi": 1.0, "got": True}, "must be <= 1, got 2.5"),
        (-0.5, {"lo": 0.0, "got": True}, "must be >= 0, got -0.5"),
    ],
)
def test_number_refusals_are_named(value, kwargs, message):
    err = refusal(fields.number, value, "price", **kwargs)
    assert (err.path, err.message) == ("price", message)


def test_numbers_come_back_as_floats():
    assert fields.number(3, "n", lo=0.0, hi=3.0) == 3.0
    assert isinstance(fields.number(3, "n"), float)


def test_integers_outside_their_bounds_are_named():
    assert fields.between(5, "port", 1, 65535) == 5
    err = refusal(fields.between, 0, "port", 1, 65535)
    assert (err.path, err.message) == ("port", "must be between 1 and 65535, got 0")


def test_booleans_are_true_or_false_only():
    assert fields.boolean(False, "success") is False
    for value, name in ((1, "number"), ("true", "string"), (None, "null")):
        err = refusal(fields.boolean, value, "success")
        assert err.message == f"must be true or false, got {name}"


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_free_objects_are_bounded_in_kind_depth_and_size():
    assert fields.free_object(nested(MAX_DEPTH), "features", limit=1024, encode=compact)
    err = refusal(fields.free_object, [1], "features", limit=1024, encode=compact)
    assert err.message == "must be a JSON object, got array"
    err = refusal(fields.free_object, nested(MAX_DEPTH + 1), "features", limit=1024,
                  encode=compact)
    assert (err.message, err.too_large) == (f"is nested deeper than {MAX_DEPTH} levels", False)
    err = refusal(fields.free_object, {"a": "x" * 2048}, "features", limit=1024, encode=compact)
    assert (err.message, err.too_large) == ("is larger than 1 KiB", True)
    err = refusal(fields.free_object, {"a": {1, 2}}, "features", limit=1024, encode=compact)
    assert err.message.startswith("is not JSON: ") and not err.too_large


def test_bounded_returns_the_encoded_size():
    assert fields.bounded({"a": 1}, "m", limit=1024, encode=compact) == len('{"a":1}')
    err = refusal(fields.bounded, {"a": math.nan},
                  "m", limit=1024, encode=lambda v: json.dumps(v, allow_nan=False))
    assert err.path == "m" and err.message.startswith("is not JSON: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), ("s", 1), ({}, 1), ([], 1), ({"a": 1}, 2), ([[1]], 3), ({"a": [], "b": {"c": 1}}, 3)],
)
def test_depth_counts_a_scalar_as_one_level(value, expected):
    assert fields.depth(value) == expected


def test_depth_needs_no_recursion():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert fields.depth(deep) == 100_001


@pytest.mark.parametrize("value", ["a\x00", {"k\x00": 1}, {"k": ["v\x00"]}, [{"a": "\x00"}]])
def test_depth_refuses_nul_when_asked(value):
    assert fields.depth(value) >= 1
    assert refusal(fields.depth, value, nul=True).message == "contains a NUL character"


def test_walk_names_every_value_parents_first():
    value = {"a": [10, {"b": "x"}], "c": None}
    seen = list(fields.walk(value, "data"))
    assert seen[0] == (value, "data", 1)
    assert {(path, level) for _, path, level in seen} == {
        ("data", 1), ("data.a", 2), ("data.a[0]", 3), ("data.a[1]", 3), ("data.a[1].b", 4),
        ("data.c", 2),
    }
    order = [path for _, path, _ in seen]
    assert order.index("data.a") < order.index("data.a[1]") < order.index("data.a[1].b")
    assert [path for _, path, _ in fields.walk({"k": 1}, "")] == ["", "k"]


def test_text_refuses_nul_and_lone_surrogates():
    assert fields.text("caf\u00e9", "actor") == "caf\u00e9"
    assert refusal(fields.text, "a\x00", "actor").message == "contains a NUL character"
    assert refusal(fields.text, "\udc80", "actor").message == "contains a lone UTF-16 surrogate"
    assert fields.is_text("ok") and not fields.is_text("\ud800")


def test_iso_times_carry_an_offset_and_come_back_in_utc():
    moment = fields.iso_time("2025-01-15T10:30:00.1234567-05:00", "timestamp")
    assert moment.isoformat() == "2025-01-15T15:30:00.123456+00:00"
    assert fields.iso_time("2025-01-15t10:30z", "t").isoformat() == "2025-01-15T10:30:00+00:00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1736937000, "must be an ISO-8601 string with an offset"),
        ("2025-01-15T10:30:00", "must be ISO-8601 with an offset, like 2025-01-15T10:30:00Z; "
                                "got '2025-01-15T10:30:00'"),
        ("2025-02-30T10:30:00Z", "is not a valid time: '2025-02-30T10:30:00Z'"),
        ("0001-01-01T00:00+01:00", "is out of range: '0001-01-01T00:00+01:00' has no UTC time "
                                   "between years 1 and 9999"),
        ("9999-12-31T23:59-01:00", "is out of range: '9999-12-31T23:59-01:00' has no UTC time "
                                   "between years 1 and 9999"),
    ],
)
def test_iso_time_refusals_are_named(value, message):
    err = refusal(fields.iso_time, value, "since")
    assert (err.path, err.message) == ("since", message)
