"""A batch travels as columns: decoded straight into the monitor's storage form, stored
with one window extend and one pass over the operation counts, and ending exactly where
the same records recorded one by one end."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.api.latency_record import _NAME_CHARS, NAME_MAX, decode_batch
from exporter.latency.guard import NAME_RE
from exporter.latency.metrics import LatencyMetrics
from exporter.latency.monitor import LatencyBatch, LatencyMonitor, LatencyRecord
from exporter.latency.window import KeyedWindow


def _body(records: list[dict]) -> bytes:
    return json.dumps({"records": records}).encode()


def test_a_batch_is_decoded_into_the_monitors_columns():
    batch = decode_batch(_body([
        {"service": "svc", "operation": "op", "latency_ms": 5},
        {"service": "svc", "operation": "op.b", "latency_ms": 2.5, "success": False,
         "trace_id": "t-1"},
    ]), 10)
    assert isinstance(batch, LatencyBatch)
    assert batch.services == ["svc", "svc"]
    assert batch.operations == ["op", "op.b"]
    assert batch.latencies_ms == [5.0, 2.5]
    assert batch.successes == [True, False]
    assert batch.trace_ids == [None, "t-1"]
    assert list(batch) == [LatencyRecord("svc", "op", 5.0, True, None),
                           LatencyRecord("svc", "op.b", 2.5, False, "t-1")]
    assert batch[1:] == [LatencyRecord("svc", "op.b", 2.5, False, "t-1")]
    assert batch[-1].trace_id == "t-1"


def test_the_batch_name_check_is_the_name_pattern():
    assert NAME_RE.pattern == _NAME_CHARS.pattern[:-1] + "{1," + str(NAME_MAX) + "}"


@given(st.sampled_from(["service", "operation", "trace_id"]),
       st.text(alphabet=st.characters(exclude_characters='"\\'), min_size=1, max_size=3))
@settings(max_examples=300, deadline=None)
def test_a_batch_takes_a_name_only_when_the_name_pattern_does(field, middle):
    record = {"service": "svc", "operation": "op", "latency_ms": 1, "trace_id": "t"}
    record[field] = "a" + middle + "b"
    decoded = decode_batch(_body([{"service": "ok", "operation": "ok", "latency_ms": 1},
                                  record]), 10)
    if NAME_RE.fullmatch(record[field]) is None:
        assert decoded is None
    elif decoded is not None:  # (a control character is not JSON and goes the strict way)
        assert getattr(decoded[1], field) == record[field]


RECORDS = [
    {"service": f"svc-{i % 3}", "operation": f"op-{i % 2}", "latency_ms": (i * 37) % 700 / 7,
     "success": i % 5 != 0, **({"trace_id": f"t{i}"} if i % 4 else {})}
    for i in range(40)
]


def _series(registry: CollectorRegistry) -> tuple[str, list]:
    """The text exposition without `_created` lines, and the exemplars' labels and values."""
    text = "".join(line + "\n" for line in generate_latest(registry).decode().splitlines()
                   if "_created" not in line)
    families = text_string_to_metric_families(generate_openmetrics(registry).decode())
    exemplars = [(s.labels, s.exemplar.labels, s.exemplar.value)
                 for f in families for s in f.samples if s.exemplar is not None]
    return text, exemplars


def test_a_batch_ends_where_the_same_records_one_by_one_end():
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    first = LatencyMonitor(window=25, metrics=LatencyMetrics(one_by_one), clock=lambda: 100.0)
    second = LatencyMonitor(window=25, metrics=LatencyMetrics(batched), clock=lambda: 100.0)
    for r in RECORDS:
        first.record_latency(r["service"], r["operation"], r["latency_ms"],
                             r["success"], trace_id=r.get("trace_id"))
    batch = decode_batch(_body(RECORDS), 100)
    assert isinstance(batch, LatencyBatch)
    assert second.record_many(batch, checked=True) == len(RECORDS)
    assert len(first) == len(second) == 25
    for service in ("svc-0", "svc-1", "svc-2"):
        for operation in ("op-0", "op-1", None):
            assert (first.get_latency_stats(service, operation)
                    == second.get_latency_stats(service, operation))
    text, exemplars = _series(one_by_one)
    assert "usdcop_operation_latency_seconds_count" in text
    assert exemplars
    assert _series(batched) == (text, exemplars)


def test_extending_the_window_ends_as_appending_one_by_one():
    keys = [("a", "x"), ("b", "x"), ("a", "x"), ("c", "y"), ("a", "x"), ("b", "x"), ("c", "y")]
    appended, extended = KeyedWindow(4), KeyedWindow(4)
    appended.append(("z", "z"), -1)
    extended.append(("z", "z"), -1)
    for i, key in enumerate(keys):
        appended.append(key, i)
    extended.extend(keys, list(range(len(keys))))
    assert len(extended) == len(appended) == 4
    assert ([(k, list(v)) for k, v in extended.groups()]
            == [(k, list(v)) for k, v in appended.groups()])
    assert extended.keys() == appended.keys()
