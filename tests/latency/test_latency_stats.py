"""Percentiles and summaries against an independent computation; the keyed window's eviction."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.latency.stats import mean, percentile, summarize
from exporter.latency.window import KeyedWindow

latencies = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=300,
)


@given(values=latencies, ok=st.integers(min_value=0, max_value=300))
@settings(max_examples=200, deadline=None)
def test_summary_matches_statistics_module(values, ok):
    ok = min(ok, len(values))
    got = summarize(values, ok)
    # statistics.quantiles(method="inclusive") is the same linear interpolation as numpy's default
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert got["count"] == len(values)
    assert got["success_ratio"] == ok / len(values)
    assert got["mean_ms"] == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-9)
    assert got["min_ms"] == min(values)
    assert got["max_ms"] == max(values)
    for key, cut in (("p50_ms", cuts[49]), ("p95_ms", cuts[94]), ("p99_ms", cuts[98])):
        assert got[key] == pytest.approx(cut, rel=1e-9, abs=1e-6), key


def test_known_percentiles():
    values = [4.0, 1.0, 3.0, 2.0]
    got = summarize(values, 3)
    assert got["p50_ms"] == 2.5
    assert got["p95_ms"] == pytest.approx(3.85)
    assert got["p99_ms"] == pytest.approx(3.97)
    assert got["success_ratio"] == 0.75


def test_single_value_is_every_percentile():
    got = summarize([7.5], 0)
    assert got["p50_ms"] == got["p95_ms"] == got["p99_ms"] == 7.5
    assert got["success_ratio"] == 0.0


def test_empty_summary_is_nulls():
    got = summarize([], 0)
    assert got["count"] == 0
    assert all(got[k] is None for k in got if k != "count")
    assert mean([]) is None
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_window_evicts_oldest_across_keys():
    window = KeyedWindow(3)
    window.append("a", 1)
    window.append("b", 2)
    window.append("a", 3)
    window.append("b", 4)  # evicts a:1
    assert list(window.items("a")) == [3]
    assert list(window.items("b")) == [2, 4]
    window.append("b", 5)  # evicts b:2
    window.append("b", 6)  # evicts a:3, and key a disappears
    assert window.keys() == ["b"]
    assert list(window.items("b")) == [4, 5, 6]
    assert list(window.items("a")) == []
    assert len(window) == 3


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers()), max_size=60),
    st.integers(min_value=1, max_value=20),
)
@settings(max_examples=200, deadline=None)
def test_window_keeps_exactly_the_last_n(appends, size):
    window = KeyedWindow(size)
    for key, item in appends:
        window.append(key, item)
    kept = appends[-size:]
    assert len(window) == len(kept)
    for key in "abcd":
        assert list(window.items(key)) == [item for k, item in kept if k == key]


def test_window_remove_and_clear():
    window = KeyedWindow(10)
    for i in range(6):
        window.append(("svc-a" if i % 2 else "svc-b", "op"), i)
    assert window.remove(lambda key: key[0] == "svc-a") == 3
    assert len(window) == 3
    window.append(("svc-c", "op"), 9)
    assert window.keys() == [("svc-b", "op"), ("svc-c", "op")]
    assert window.clear() == 4
    assert len(window) == 0 and window.keys() == []


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "10"])
def test_window_size_must_be_positive_integer(size):
    with pytest.raises(ValueError, match="window size must be a positive integer"):
        KeyedWindow(size)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from("abcd"), st.integers()),
            st.tuples(st.just("remove"), st.sampled_from("abcd")),
        ),
        max_size=80,
    ),
    st.integers(min_value=1, max_value=12),
)
@settings(max_examples=200, deadline=None)
def test_window_matches_a_plain_list_model(steps, size):
    window, model = KeyedWindow(size), []
    for first, second in steps:
        if first == "remove":
            assert window.remove(lambda key, k=second: key == k) == sum(
                k == second for k, _ in model
            )
            model = [(k, i) for k, i in model if k != second]
        else:
            window.append(first, second)
            model = (model + [(first, second)])[-size:]
    assert len(window) == len(model)
    for key in "abcd":
        assert list(window.items(key)) == [item for k, item in model if k == key]
