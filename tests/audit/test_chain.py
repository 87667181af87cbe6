"""RFC 8785 canonical JSON and the event hash."""

from __future__ import annotations

import json
import math
import struct

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from exporter.audit.chain import GENESIS, canonical, event_hash, format_number, format_time

# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical forms.
RFC_NUMBERS = [
    ("0000000000000000", "0"), ("8000000000000000", "0"), ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"), ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"), ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"), ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"), ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"), ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"), ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"), ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"), ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"), ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"), ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC_NUMBERS)
def test_numbers_as_rfc_8785_appendix_b(bits, expected):
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert format_number(value) == expected


def test_rfc_8785_section_3_2_2_example():
    text = ('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
            ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
            ' "literals": [null, true, false]}')
    expected = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,'
                '1e-27],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}')
    assert canonical(json.loads(text)).decode() == expected


def test_keys_sort_by_utf16_code_units():
    obj = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    keys = list(json.loads(canonical(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_integers_beyond_2_53_are_formatted_as_doubles():
    assert format_number(2**53 - 1) == "9007199254740991"
    assert format_number(2**60) == "1152921504606847000"
    with pytest.raises(ValueError):
        format_number(math.nan)


def test_unsupported_values_are_refused():
    with pytest.raises(TypeError):
        canonical({"a": {1, 2}})
    with pytest.raises(TypeError):
        canonical({1: "x"})


def test_times_are_utc_with_microseconds():
    from datetime import datetime, timedelta, timezone
    value = datetime(2025, 1, 15, 5, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert format_time(value) == "2025-01-15T10:30:00.000000Z"
    with pytest.raises(ValueError):
        format_time(datetime(2025, 1, 1))


def test_event_hash_binds_every_field_and_the_previous_hash():
    body = {"sequence": 1, "event_id": "00000000-0000-0000-0000-000000000001",
            "event_type": "X_Y", "timestamp": "2025-01-01T00:00:00.000000Z",
            "received_at": "2025-01-01T00:00:00.000001Z", "symbol": None, "actor": None,
            "data": {"a": 1}}
    base = event_hash(GENESIS, body)
    assert len(base) == 32
    assert event_hash(b"\x01" * 32, body) != base
    for key, other in (("sequence", 2), ("symbol", "USDCOP"), ("actor", "x"), ("data", {"a": 2}),
                       ("received_at", "2025-01-01T00:00:00.000002Z")):
        assert event_hash(GENESIS, {**body, key: other}) != base, key
    assert event_hash(GENESIS, {**body, "accepted_at": "ignored"}) == base


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00")),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(exclude_categories=("Cs",),
                                                     exclude_characters="\x00"), max_size=6),
                      children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_form_parses_back_to_the_same_value_and_is_stable(value):
    text = canonical(value)
    parsed = json.loads(text)
    assert canonical(parsed) == text
    assert parsed == value or _same_numbers(parsed, value)


def _same_numbers(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_numbers(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_numbers(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_format_round_trips(value):
    assert float(format_number(value)) == value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.dictionaries(st.text(max_size=5).filter(lambda s: "\x00" not in s and
                                                        not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
                             json_values.filter(lambda v: "\x00" not in json.dumps(v)
                                                and "\\ud" not in json.dumps(v)), max_size=5))
def test_jsonb_round_trip_keeps_the_canonical_form(pg_conn, value):
    """What Postgres renders back from jsonb canonicalises to the bytes that were hashed."""
    (back,) = pg_conn.execute("SELECT %s::jsonb", (Jsonb(value),)).fetchone()
    assert canonical(back) == canonical(value)


@pytest.fixture(scope="module")
def pg_conn():
    from tests.conftest import PG_ADMIN_DSN
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        yield conn


@given(st.integers(1, 2**53 - 1), st.uuids(), st.text(min_size=1, max_size=20),
       st.none() | st.text(max_size=8).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
       st.none() | st.text(max_size=8).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
       st.none() | st.dictionaries(st.text(max_size=4).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
                                   st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False)
                                   | st.text(max_size=6).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
                                   max_size=4))
def test_fast_hashes_equal_the_canonical_definition(sequence, eid, event_type, symbol, actor, data):
    """The hand-built envelope hashes exactly JCS of the whole object."""
    import hashlib

    from exporter.audit.chain import client_digest, link_hash
    body = {"sequence": sequence, "event_id": str(eid), "event_type": event_type,
            "timestamp": "2025-01-01T00:00:00.000000Z", "received_at": "2025-01-01T00:00:00.5Z",
            "symbol": symbol, "actor": actor, "data": data}
    prev = b"\x07" * 32
    assert event_hash(prev, body) == hashlib.sha256(prev + canonical(body)).digest()
    assert link_hash(prev, data_json=canonical(data), **{k: v for k, v in body.items()
                                                         if k != "data"}) == event_hash(prev, body)
    fields = {"event_type": event_type, "timestamp": None, "symbol": symbol, "actor": actor,
              "data": data}
    assert client_digest(event_type, None, symbol, actor, canonical(data)) == \
        hashlib.sha256(canonical(fields)).digest()
