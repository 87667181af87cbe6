"""One description of the latency record: the one-pass decoder never takes a body the
strict parser and the field checks refuse, and takes what they take the same way."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.api.errors import ApiError
from exporter.api.latency import _RECORD_SCHEMA
from exporter.api.latency_record import FIELDS, checked_record, decode_batch, decode_single
from exporter.api.validation import parse_json

KEYS = ["service", "operation", "latency_ms", "success", "trace_id", "metadata", "other"]
VALUES = [
    '"svc"', '"op.v1:get-1"', '"a b"', '""', '"' + "x" * 65 + '"', '"x\\u0000"', '"\\u0073vc"',
    '"svc\\n"', "125", "0", "-1", "1e400", "86400001", "12.5", "true", "false", "null",
    "NaN", "Infinity", "[]", "{}", '{"a": 1}', '"125"', "1" + "0" * 50,
]


def strict(raw: bytes):
    """What the strict path makes of a body: a record, or the refusal."""
    try:
        return checked_record(parse_json(raw), "")
    except ApiError as exc:
        return exc


@given(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)), max_size=7),
       st.sampled_from(["", " ", "\n"]))
@settings(max_examples=800, deadline=None)
def test_the_one_pass_decoder_agrees_with_the_strict_path(pairs, space):
    raw = ("{" + ",".join(f'{space}"{k}":{space}{v}' for k, v in pairs) + "}").encode()
    fast = decode_single(raw)
    slow = strict(raw)
    if isinstance(slow, ApiError):
        assert fast is None, (raw, slow.detail if hasattr(slow, "detail") else slow)
    else:
        assert fast is None or fast == slow, raw


def test_a_repeated_key_goes_the_strict_way():
    raw = b'{"service":"a","operation":"b","latency_ms":1,"latency_ms":2}'
    assert decode_single(raw) is None
    assert isinstance(strict(raw), ApiError)


def test_the_usual_record_takes_the_one_pass_decoder():
    raw = json.dumps({"service": "svc", "operation": "op", "latency_ms": 5,
                      "success": False, "trace_id": "t-1"}).encode()
    assert decode_single(raw) == ("svc", "op", 5.0, False, "t-1")


def test_the_document_is_drawn_from_the_same_fields():
    assert list(_RECORD_SCHEMA["properties"]) == [f.name for f in FIELDS]
    assert _RECORD_SCHEMA["required"] == [f.name for f in FIELDS if f.required]


def strict_batch(raw: bytes):
    """What the strict path makes of a batch body: its records, or the refusal."""
    from exporter.api.latency import _record

    try:
        body = parse_json(raw)
        if not isinstance(body, dict) or set(body) != {"records"} or not isinstance(
                body["records"], list) or len(body["records"]) > 2:
            return ApiError(400, "not_a_batch", "not a batch")
        return [_record(item, "records", i) for i, item in enumerate(body["records"])]
    except ApiError as exc:
        return exc


RECORD = st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)), max_size=6).map(
    lambda pairs: "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}")
PLAIN = st.builds(lambda s, o, ms: json.dumps({"service": s, "operation": o, "latency_ms": ms}),
                  st.sampled_from(["svc", "a", "x" * 64]), st.sampled_from(["op", "b:c"]),
                  st.integers(0, 10**6))


@given(st.lists(st.one_of(PLAIN, RECORD), max_size=4),
       st.sampled_from(['"records"', '"records","records"', '"other"']))
@settings(max_examples=500, deadline=None)
def test_the_one_pass_batch_decoder_agrees_with_the_strict_path(records, key):
    keys = key.split(",")
    raw = ("{" + ",".join(f"{k}:[{','.join(records)}]" for k in keys) + "}").encode()
    fast = decode_batch(raw, 2)
    slow = strict_batch(raw)
    if isinstance(slow, ApiError):
        assert fast is None, raw
    else:
        assert fast is None or fast == slow, raw
