"""Body formats: detection by shape, status words, details, metadata and bad bodies."""

import json

import pytest

from exporter.health.bodies import interpret, is_json_type, parse_json


def body(doc) -> bytes:
    return json.dumps(doc).encode()


SEED = {
    "service": "x",
    "status": "healthy",
    "details": {"uptime": 10, "requests_per_minute": 60.5, "error_rate": 0.01, "memory_usage_mb": 256},
    "metadata": {"version": "2"},
}


@pytest.mark.parametrize(
    ("doc", "fmt", "reported"),
    [
        ({"status": "healthy"}, "seed", "healthy"),
        ({"status": "degraded"}, "seed", "degraded"),
        ({"status": "unhealthy"}, "seed", "unhealthy"),
        ({"status": "Healthy"}, "seed", "healthy"),  # status words ignore case
        ({"status": "pass"}, "ietf", "healthy"),
        ({"status": "PASS"}, "ietf", "healthy"),
        ({"status": "ok"}, "ietf", "healthy"),
        ({"status": "up"}, "ietf", "healthy"),
        ({"status": "warn"}, "ietf", "degraded"),
        ({"status": "fail"}, "ietf", "unhealthy"),
        ({"status": "error"}, "ietf", "unhealthy"),
        ({"status": "down"}, "ietf", "unhealthy"),
        ({"status": "UP", "checks": {}}, "ietf", "healthy"),  # IETF shape wins over case
        ({"status": "UP"}, "spring", "healthy"),
        ({"status": "down", "components": {}}, "spring", "unhealthy"),
        ({"status": "DOWN"}, "spring", "unhealthy"),
        ({"status": "OUT_OF_SERVICE"}, "spring", "unhealthy"),
        ({"status": "out_of_service"}, "spring", "unhealthy"),
        ({"status": "UNKNOWN"}, "spring", None),
        ({"version": 1}, "json", None),
        ([1, 2], "json", None),
        ("just a string", "json", None),
    ],
)
def test_detection_by_shape(doc, fmt, reported):
    got = interpret(body(doc), "application/json")
    assert (got.format, got.reported, got.error) == (fmt, reported, None)
    assert got.value == doc


def test_seed_details_and_metadata():
    got = interpret(body(SEED), "application/json")
    assert got.details == {"uptime": 10.0, "requests_per_minute": 60.5, "error_rate": 0.01,
                           "memory_usage_mb": 256.0}
    assert got.metadata == {"version": "2"}


def test_details_keep_only_finite_numbers_of_known_keys():
    raw = (b'{"status": "healthy", "details": {"uptime": 1e400, "requests_per_minute": "120",'
           b' "error_rate": true, "memory_usage_mb": 12, "threads": 7}, "metadata": [1]}')
    got = interpret(raw, "application/json")
    assert got.details == {"memory_usage_mb": 12.0}
    assert got.metadata is None  # not an object: dropped, not passed on


def test_ietf_uptime_and_metadata():
    doc = {"status": "pass", "version": "1",
           "checks": {"uptime": [{"observedValue": 99, "observedUnit": "s"}]}}
    got = interpret(body(doc), "application/health+json")
    assert got.details == {"uptime": 99.0}
    assert got.metadata == {"version": "1", "checks": doc["checks"]}


def test_spring_metadata_is_everything_but_status():
    doc = {"status": "UP", "components": {"db": {"status": "UP"}}}
    assert interpret(body(doc)).metadata == {"components": {"db": {"status": "UP"}}}


@pytest.mark.parametrize(
    ("raw", "ctype", "needle"),
    [
        (b"{not json", "application/json", "invalid JSON"),
        (b"{not json", "application/health+json; charset=utf-8", "invalid JSON"),
        (b'{"status": NaN}', "application/json", "NaN"),
        (b'{"status": "healthy", "details": {"uptime": Infinity}}', "application/json", "Infinity"),
        (b"\xff\xfe\xfa", "application/json", "not valid UTF-8"),
        (b"[" * 100000, "application/json", "nested too deeply"),
        (b'{"n": ' + b"9" * 5000 + b"}", "application/json", "invalid JSON"),
        (body({"status": "banana"}), "application/json", "unknown status word 'banana'"),
        (body({"status": "banana"}), "text/plain", "unknown status word 'banana'"),
        (body({"status": 200}), None, "'status' is not a string"),
        (body({"status": None}), None, "'status' is not a string"),
        (body({"status": "x" * 500}), None, "x" * 40 + "...'"),
    ],
)
def test_bad_bodies(raw, ctype, needle):
    got = interpret(raw, ctype)
    assert got.error is not None and needle in got.error
    assert got.reported is None


def test_non_json_content_type_that_does_not_parse_is_text():
    got = interpret(b"{looks like json but is not", "text/plain")
    assert (got.format, got.error, got.value) == ("text", None, "{looks like json but is not")


def test_json_under_a_text_content_type_is_still_read_by_shape():
    got = interpret(body({"status": "fail"}), "text/plain")
    assert (got.format, got.reported) == ("ietf", "unhealthy")


@pytest.mark.parametrize("ctype", [None, "application/json", "text/plain"])
def test_empty_body(ctype):
    got = interpret(b"  \n", ctype)
    assert (got.format, got.value, got.reported, got.error) == ("empty", "", None, None)


@pytest.mark.parametrize(
    ("fmt", "doc", "reported", "error"),
    [
        ("seed", {"status": "healthy"}, "healthy", None),
        ("seed", {"status": "pass"}, None, "expected seed health format: unknown status word 'pass'"),
        ("ietf", {"status": "healthy"}, None, "expected ietf health format: unknown status word 'healthy'"),
        ("ietf", {"status": "warn"}, "degraded", None),
        ("spring", {"status": "UP"}, "healthy", None),
        ("spring", {"status": "warn"}, None, "expected spring health format: unknown status word 'warn'"),
        ("seed", {"no": "status"}, None, "expected seed health format: no 'status' field"),
        ("seed", [1], None, "expected seed health format: no 'status' field"),
    ],
)
def test_configured_format_is_required(fmt, doc, reported, error):
    got = interpret(body(doc), "application/json", fmt)
    assert (got.format, got.reported, got.error) == (fmt, reported, error)


def test_configured_format_rejects_text_and_empty():
    assert interpret(b"OK", "text/plain", "ietf").error.startswith("expected ietf health format: invalid JSON")
    assert interpret(b"", None, "spring").error == "expected spring health format: empty body"


def test_text_format_accepts_anything_and_claims_nothing():
    got = interpret(body({"status": "fail"}), "application/json", "text")
    assert (got.format, got.reported, got.error) == ("text", None, None)
    assert got.value == {"status": "fail"}  # conditions can still look inside
    got = interpret(b"{garbage", "application/json", "text")
    assert (got.format, got.value, got.error) == ("text", "{garbage", None)


def test_charset_is_honoured_for_text():
    got = interpret("café".encode("latin-1"), "text/plain; charset=ISO-8859-1")
    assert got.value == "café"
    assert interpret(b"caf\xe9", "text/plain; charset=nonsense").value == "caf\ufffd"


def test_unknown_body_format_is_a_programming_error():
    with pytest.raises(ValueError, match="'none'"):
        interpret(b"", None, "none")


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/health+json", True),
        ("application/vnd.spring-boot.actuator.v3+json", True),
        ("text/plain", False),
        ("text/json-ish", False),
        (None, False),
    ],
)
def test_is_json_type(ctype, expected):
    assert is_json_type(ctype) is expected


def test_parse_json_is_strict():
    assert parse_json(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with pytest.raises(ValueError, match="NaN"):
        parse_json(b"NaN")
