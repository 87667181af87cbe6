"""Strict JSON parsing of request bodies."""

import pytest

from exporter.api.errors import ApiError
from exporter.api.validation import parse_json


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": NaN}', "NaN is not allowed"),
        (b'{"a": Infinity}', "Infinity is not allowed"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"a": "x\\u0000"}', "NUL character"),
        (b'{"a": ' + b"9" * 100 + b"}", "too large"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"{", "malformed JSON"),
        (b"[" * 100 + b"]" * 100, "nested deeper"),
        (b'{"a": 1e999}', "out of range"),
    ],
)
def test_bad_json_is_named(raw, message):
    with pytest.raises(ApiError) as err:
        parse_json(raw)
    assert err.value.status == 400
    assert message in err.value.detail


def test_good_json_parses():
    assert parse_json(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
