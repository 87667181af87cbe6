"""Latency routes over real HTTP: round trips, empty answers, bad values named, the guard."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.api.keys import READY
from exporter.api.validation import BATCH_BODY_LIMIT

URL = "/api/health/latency"


@pytest.fixture
async def client(aiohttp_client, registry, make_latency_app):
    return await aiohttp_client(make_latency_app(registry))


def rec(service="trading-api", operation="execute_trade", latency_ms=125.0, **extra):
    return {"service": service, "operation": operation, "latency_ms": latency_ms, **extra}


async def answer(response, status=200):
    body = await response.json()
    assert response.status == status, body
    return body


async def test_single_record_round_trip(client, registry):
    got = await answer(
        await client.post(URL, json=rec(success=False, metadata={"symbol": "USDCOP"}))
    )
    assert got == {"accepted": 1}
    await answer(await client.post(URL, json=rec(latency_ms=75)))
    stats = await answer(await client.get(URL, params={"service": "trading-api"}))
    assert stats == {
        "service": "trading-api",
        "operation": None,
        "count": 2,
        "success_ratio": 0.5,
        "mean_ms": 100.0,
        "min_ms": 75.0,
        "max_ms": 125.0,
        "p50_ms": 100.0,
        "p95_ms": 122.5,
        "p99_ms": 124.5,
    }
    labels = {"service": "trading-api", "operation": "execute_trade"}
    assert registry.get_sample_value("usdcop_operation_latency_seconds_count", labels) == 2
    assert registry.get_sample_value("usdcop_operation_errors_total", labels) == 1
    assert client.app[READY]["latency"] is True


async def test_batch_round_trip_and_every_get_type(client):
    records = [rec(latency_ms=ms) for ms in (100, 200, 300)] + [
        rec(operation="quote", latency_ms=3000)
    ]
    assert await answer(await client.post(URL, json={"records": records})) == {"accepted": 4}
    stats = await answer(
        await client.get(
            URL, params={"type": "stats", "service": "trading-api", "operation": "execute_trade"}
        )
    )
    assert (stats["operation"], stats["count"], stats["mean_ms"]) == ("execute_trade", 3, 200.0)
    average = await answer(
        await client.get(URL, params={"type": "average", "service": "trading-api"})
    )
    assert average == {"service": "trading-api", "minutes": 5, "average_ms": 900.0, "count": 4}
    trend = await answer(
        await client.get(
            URL,
            params={
                "type": "trend",
                "service": "trading-api",
                "operation": "execute_trade",
                "minutes": "2",
            },
        )
    )
    assert trend == {
        "trend": "stable",
        "current_mean_ms": 200.0,
        "previous_mean_ms": None,
        "change_ratio": None,
        "service": "trading-api",
        "operation": "execute_trade",
        "minutes": 2,
    }
    high = await answer(await client.get(URL, params={"type": "high", "threshold": "250"}))
    assert high == {
        "threshold_ms": 250.0,
        "minutes": 5,
        "services": [
            {
                "service": "trading-api",
                "operation": "quote",
                "mean_ms": 3000.0,
                "p95_ms": 3000.0,
                "count": 1,
            }
        ],
    }
    default_high = await answer(await client.get(URL, params={"type": "high"}))
    assert default_high["threshold_ms"] == 1000.0 and len(default_high["services"]) == 1


async def test_empty_answers(client):
    stats = await answer(
        await client.get(URL, params={"service": "nobody", "operation": "nothing"})
    )
    assert stats["count"] == 0 and stats["mean_ms"] is None and stats["p99_ms"] is None
    average = await answer(
        await client.get(URL, params={"type": "average", "service": "nobody", "minutes": "60"})
    )
    assert average == {"service": "nobody", "minutes": 60, "average_ms": None, "count": 0}
    trend = await answer(await client.get(URL, params={"type": "trend", "service": "nobody"}))
    assert trend == {
        "trend": "stable",
        "current_mean_ms": None,
        "previous_mean_ms": None,
        "change_ratio": None,
        "service": "nobody",
        "operation": None,
        "minutes": 5,
    }
    high = await answer(await client.get(URL, params={"type": "high"}))
    assert high == {"threshold_ms": 1000.0, "minutes": 5, "services": []}
    assert await answer(await client.delete(URL)) == {"cleared": 0}


async def test_delete_clears_the_window_not_the_counters(client, registry):
    await client.post(URL, json={"records": [rec(), rec(), rec(service="ml-analytics")]})
    assert await answer(await client.delete(URL, params={"service": "trading-api"})) == {
        "cleared": 2
    }
    assert (await answer(await client.get(URL, params={"service": "trading-api"})))["count"] == 0
    assert (await answer(await client.get(URL, params={"service": "ml-analytics"})))["count"] == 1
    assert await answer(await client.delete(URL)) == {"cleared": 1}
    assert (
        registry.get_sample_value(
            "usdcop_operation_latency_seconds_count",
            {"service": "trading-api", "operation": "execute_trade"},
        )
        == 2
    )


async def test_trace_id_becomes_an_exemplar(client, registry):
    await answer(await client.post(URL, json=rec(latency_ms=4, trace_id="abc123")))
    text = generate_openmetrics(registry).decode()
    assert '# {trace_id="abc123"} 0.004' in text


BIG = "x" * (70 * 1024)


@pytest.mark.parametrize(
    ("body", "status", "field", "detail"),
    [
        ({"operation": "op", "latency_ms": 1}, 422, "service", "field 'service' is required"),
        (rec(service=None), 422, "service", "required"),
        (rec(extra=1), 422, "extra", "unknown field"),
        (rec(service="has space"), 422, "service", "must match"),
        (rec(service="s" * 65), 422, "service", "longer than 64"),
        (rec(operation=7), 422, "operation", "must be a string"),
        (rec(latency_ms=-1), 422, "latency_ms", "must be >= 0"),
        (rec(latency_ms="12"), 422, "latency_ms", "must be a number"),
        (rec(latency_ms=True), 422, "latency_ms", "must be a number"),
        (rec(latency_ms=86_400_001), 422, "latency_ms", "<= 8.64e+07"),
        (rec(success="yes"), 422, "success", "true or false"),
        (rec(metadata=[1]), 422, "metadata", "must be a JSON object"),
        (rec(metadata={"blob": BIG}), 413, "metadata", "larger than 64 KiB"),
        (rec(trace_id="t" * 65), 422, "trace_id", "longer than 64"),
        (rec(trace_id="a b"), 422, "trace_id", "must match"),
        ([rec()], 422, None, "must be a JSON object"),
        ("text", 422, None, "must be a JSON object"),
        ({"records": rec()}, 422, "records", "records must be an array"),
        ({"records": [rec()], "extra": 1}, 422, "extra", "unknown field"),
        (
            {"records": [rec(), rec(), rec(latency_ms=None)]},
            422,
            "records[2].latency_ms",
            "required",
        ),
        ({"records": [rec(), "x"]}, 422, "records[1]", "must be a JSON object"),
        ({"records": [rec(), rec(bogus=1)]}, 422, "records[1].bogus", "unknown field"),
        ({"records": [rec()] * 1001}, 413, "records", "at most 1000"),
    ],
)
async def test_bad_records_are_named_and_change_nothing(
    client, registry, body, status, field, detail
):
    got = await answer(await client.post(URL, json=body), status)
    assert got["field"] == field
    assert detail in got["detail"]
    stats = await answer(await client.get(URL, params={"service": "trading-api"}))
    assert stats["count"] == 0
    assert (
        registry.get_sample_value(
            "usdcop_operation_latency_seconds_count",
            {"service": "trading-api", "operation": "execute_trade"},
        )
        is None
    )


@pytest.mark.parametrize(
    ("data", "headers", "status", "detail"),
    [
        (b'{"service": "a", "operation": "b", "latency_ms": NaN}', None, 400, "NaN"),
        (
            b'{"service": "a", "service": "a", "operation": "b", "latency_ms": 1}',
            None,
            400,
            "duplicate key",
        ),
        (b'{"service": "a", "operation": "b", "latency_ms": 1', None, 400, "malformed JSON"),
        (b'{"service": "a\\u0000", "operation": "b", "latency_ms": 1}', None, 400, "NUL"),
        (
            b'{"service": "a", "operation": "b", "latency_ms": 1' + b"0" * 60 + b"}",
            None,
            400,
            "too large",
        ),
        (b"", None, 400, "empty"),
        (json.dumps(rec()).encode(), {"Content-Type": "text/plain"}, 415, "application/json"),
        (json.dumps(rec(metadata={"pad": "x" * (1 << 20)})).encode(), None, 413, "1048576 bytes"),
        (b" " * (BATCH_BODY_LIMIT + 1), None, 413, "8388608 bytes"),
    ],
)
async def test_malformed_bodies(client, data, headers, status, detail):
    headers = headers or {"Content-Type": "application/json"}
    got = await answer(await client.post(URL, data=data, headers=headers), status)
    assert detail in got["detail"]


async def test_a_large_batch_is_fine(client):
    records = [rec(metadata={"pad": "y" * 2000}) for _ in range(1000)]  # about 2 MiB
    assert await answer(await client.post(URL, json={"records": records})) == {"accepted": 1000}


@pytest.mark.parametrize(
    ("params", "field", "detail"),
    [
        ({"type": "bogus"}, "type", "type must be one of stats, average, trend, high"),
        ({"service": "a", "color": "red"}, "color", "unknown query parameter"),
        ({}, "service", "'service' is required"),
        ({"type": "average"}, "service", "'service' is required"),
        ({"service": "a b"}, "service", "must match"),
        ({"service": "a", "operation": "x/y"}, "operation", "must match"),
        ({"service": "a", "minutes": "5"}, "minutes", "unknown query parameter"),
        ({"type": "average", "service": "a", "minutes": "0"}, "minutes", "between 1 and 1440"),
        ({"type": "trend", "service": "a", "minutes": "1441"}, "minutes", "between 1 and 1440"),
        ({"type": "trend", "service": "a", "minutes": "2.5"}, "minutes", "must be an integer"),
        ({"type": "average", "service": "a", "operation": "x"}, "operation", "unknown query"),
        ({"type": "high", "service": "a"}, "service", "unknown query parameter"),
        ({"type": "high", "threshold": "-1"}, "threshold", "between 0 and"),
        ({"type": "high", "threshold": "nan"}, "threshold", "between 0 and"),
        ({"type": "high", "threshold": "fast"}, "threshold", "must be a number"),
    ],
)
async def test_bad_queries_are_named(client, params, field, detail):
    got = await answer(await client.get(URL, params=params), 400)
    assert got["field"] == field
    assert detail in got["detail"]


async def test_bad_delete_queries(client):
    await client.post(URL, json=rec())
    got = await answer(await client.delete(URL, params={"service": "a b"}), 400)
    assert got["field"] == "service"
    got = await answer(await client.delete(URL, params={"everything": "1"}), 400)
    assert got["field"] == "everything"
    assert (await answer(await client.get(URL, params={"service": "trading-api"})))["count"] == 1


async def test_the_cardinality_guard(aiohttp_client, registry, make_latency_app):
    client = await aiohttp_client(make_latency_app(registry, latency_max_pairs=2))
    await answer(await client.post(URL, json={"records": [rec(operation="a"), rec(operation="b")]}))
    got = await answer(await client.post(URL, json=rec(operation="c")), 422)
    assert got["error"] == "too_many_pairs" and got["field"] == "operation"
    assert "already tracking 2 distinct" in got["detail"]
    got = await answer(
        await client.post(URL, json={"records": [rec(operation="a"), rec(operation="d")]}), 422
    )
    assert got["field"] == "records[1].operation"
    assert registry.get_sample_value("usdcop_latency_pairs_rejected_total") == 2
    assert (await answer(await client.get(URL, params={"service": "trading-api"})))["count"] == 2
    assert await answer(await client.post(URL, json=rec(operation="a"))) == {"accepted": 1}


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**9),
    st.floats(allow_nan=False),
    st.sampled_from(["svc", "a b", "", "x" * 64, "y" * 65, "op.v1:get-1"]),
    st.lists(st.integers(), max_size=1),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["service", "operation", "latency_ms", "success", "trace_id", "metadata", "other"]
        ),
        _values,
        max_size=7,
    )
)
@settings(max_examples=500, deadline=None)
def test_the_inline_check_agrees_with_the_field_checks(value):
    from exporter.api.errors import ApiError
    from exporter.api.latency import _checked_record, _well_formed

    fast = _well_formed(value)
    try:
        slow = _checked_record(value, "")
    except ApiError:
        assert fast is None
    else:
        assert fast is None or fast == slow


def test_the_usual_record_takes_the_inline_check():
    from exporter.api.latency import _well_formed

    assert _well_formed(rec(success=False, trace_id="t1")) == (
        "trading-api",
        "execute_trade",
        125.0,
        False,
        "t1",
    )
    assert _well_formed(rec(metadata={})) is None  # metadata goes through the size checks
