"""Validation of audit event input: each bad value is named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from exporter.audit.errors import AuditValidationError
from exporter.audit.events import KNOWN_TYPES, metric_type, parse_event

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def parse(obj, **kw):
    return parse_event(obj, now=NOW, retention=30 * 86400.0, **kw)


@pytest.mark.parametrize(("obj", "field", "message"), [
    ([], None, "must be a JSON object"),
    ({}, "event_type", "required"),
    ({"event_type": "lower"}, "event_type", "must match"),
    ({"event_type": "AB"}, "event_type", "must match"),
    ({"event_type": 7}, "event_type", "must match"),
    ({"event_type": "X_Y", "extra": 1}, "extra", "unknown field"),
    ({"event_type": "X_Y", "event_id": "not-a-uuid"}, "event_id", "must be a UUID"),
    ({"event_type": "X_Y", "event_id": 12}, "event_id", "UUID string"),
    ({"event_type": "X_Y", "timestamp": "2026-03-01T12:00:00"}, "timestamp", "with an offset"),
    ({"event_type": "X_Y", "timestamp": "2026-02-30T12:00:00Z"}, "timestamp", "not a valid time"),
    ({"event_type": "X_Y", "timestamp": 1700000000}, "timestamp", "ISO-8601"),
    ({"event_type": "X_Y", "timestamp": "2026-03-01T12:06:00Z"}, "timestamp", "in the future"),
    ({"event_type": "X_Y", "timestamp": "2026-01-01T00:00:00Z"}, "timestamp", "retention horizon"),
    ({"event_type": "X_Y", "symbol": "usdcop"}, "symbol", "must match"),
    ({"event_type": "X_Y", "actor": "a\nb"}, "actor", "control character"),
    ({"event_type": "X_Y", "actor": "x" * 257}, "actor", "longer than 256"),
    ({"event_type": "X_Y", "data": [1]}, "data", "JSON object"),
    ({"event_type": "X_Y", "data": {"n": 2**53}}, "data.n", r"2\^53"),
    ({"event_type": "X_Y", "data": {"a": [1, {"b": "\ud800"}]}}, "data.a[1].b", "surrogate"),
    ({"event_type": "X_Y", "data": {"a": "x\x00"}}, "data.a", "NUL"),
    ({"event_type": "X_Y", "data": {"a": float("nan")}}, "data.a", "finite"),
])
def test_bad_event_names_the_field(obj, field, message):
    with pytest.raises(AuditValidationError, match=message) as info:
        parse(obj)
    assert info.value.field == field


def test_batch_paths_are_prefixed():
    with pytest.raises(AuditValidationError) as info:
        parse_event({"event_type": "X_Y", "data": {"deep": {"n": 2**60}}}, "events[3]", now=NOW)
    assert info.value.field == "events[3].data.deep.n"


def test_data_bounds():
    deep: dict = {}
    node = deep
    for _ in range(17):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(AuditValidationError, match="deeper than 16"):
        parse({"event_type": "X_Y", "data": deep})
    with pytest.raises(AuditValidationError, match="64 KiB") as info:
        parse({"event_type": "X_Y", "data": {"blob": "x" * 70000}})
    assert info.value.too_large


def test_defaults_and_normal_forms():
    eid = uuid.uuid4()
    ev = parse({"event_type": "TRADE_EXECUTED", "event_id": str(eid).upper(),
                "timestamp": "2026-03-01T07:00:00.123456789-05:00"})
    assert ev.event_id == str(eid)
    assert ev.timestamp == "2026-03-01T12:00:00.123456Z"  # beyond microseconds: truncated
    assert ev.timestamp_given and ev.accepted_at == "2026-03-01T12:00:00.000000Z"
    bare = parse({"event_type": "TRADE_EXECUTED"})
    assert not bare.timestamp_given and bare.timestamp == bare.accepted_at
    uuid.UUID(bare.event_id)


def test_digest_covers_client_fields_only():
    eid = str(uuid.uuid4())
    a = parse({"event_type": "X_Y", "event_id": eid, "data": {"a": 1, "b": 2}})
    b = parse_event({"event_type": "X_Y", "event_id": eid, "data": {"b": 2, "a": 1.0}},
                    now=NOW + timedelta(seconds=5))
    assert a.digest == b.digest  # receipt time and key order are not the client's fields
    c = parse({"event_type": "X_Y", "event_id": eid, "data": {"a": 1, "b": 3}})
    assert c.digest != a.digest


def test_known_types_and_metric_label():
    assert "AUDIT_PURGED" in KNOWN_TYPES and len(KNOWN_TYPES) == 10
    assert metric_type("SIGNAL_GENERATED") == "SIGNAL_GENERATED"
    assert metric_type("MY_CUSTOM") == "other"


def test_spool_form_round_trips():
    from exporter.audit.events import PendingEvent
    ev = parse({"event_type": "X_Y", "symbol": "USDCOP", "actor": "a", "data": {"k": [1, 2.5]}})
    assert PendingEvent.from_json(ev.to_json()) == ev


def test_sixteen_levels_are_allowed_seventeen_are_not():
    def nest(levels):
        value: dict = {"leaf": 1}
        for _ in range(levels - 1):
            value = {"a": value}
        return value
    parse({"event_type": "X_Y", "data": nest(16)})
    with pytest.raises(AuditValidationError, match="deeper than 16") as info:
        parse({"event_type": "X_Y", "data": nest(17)})
    assert info.value.field.count(".a") == 16


@pytest.mark.parametrize("bad", [{"k": [1, "\x00"]}, {"\x00": 1}, {"n": -(2**53)},
                                 {"f": float("inf")}, {"s": {"\udc80": 1}}, {"o": object()}])
def test_invalid_data_is_always_explained(bad):
    with pytest.raises(AuditValidationError) as info:
        parse({"event_type": "X_Y", "data": bad})
    assert info.value.field.startswith("data")
    assert info.value.detail != "data is not valid JSON"
