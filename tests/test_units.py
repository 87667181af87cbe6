"""Durations and sizes: what parses, what each bad spelling is told, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.units import (
    DURATION_FORMS,
    SIZE_FORMS,
    UnitError,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25), ("30s", 30.0), ("2m", 120.0), ("1h", 3600.0), ("30d", 2592000.0),
        ("1m30s", 90.0), ("1h30m", 5400.0), ("1d2h3m4s5ms", 93784.005), ("1.5s", 1.5),
        ("0s", 0.0), ("0.1s", 0.1), ("100ms", 0.1), ("1ms", 0.001),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30", f"invalid duration '30': missing unit; expected {DURATION_FORMS}"),
        ("1.5", f"invalid duration '1.5': missing unit; expected {DURATION_FORMS}"),
        ("", f"invalid duration '': empty; expected {DURATION_FORMS}"),
        ("30sec", f"invalid duration '30sec': expected {DURATION_FORMS}"),
        ("30S", f"invalid duration '30S': expected {DURATION_FORMS}"),
        (" 30s", f"invalid duration ' 30s': expected {DURATION_FORMS}"),
        ("-5s", f"invalid duration '-5s': expected {DURATION_FORMS}"),
        ("1w", f"invalid duration '1w': expected {DURATION_FORMS}"),
        ("30s1m", "invalid duration '30s1m': units must go from largest to smallest, each once"),
        ("1s1s", "invalid duration '1s1s': units must go from largest to smallest, each once"),
        ("36501d", "invalid duration '36501d': longer than 100 years"),
        ("9" * 70 + "s", f"invalid duration '{'9' * 64}...': too long; expected {DURATION_FORMS}"),
        (30, f"invalid duration 30: expected a string, {DURATION_FORMS}"),
    ],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(text)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (30, "30s"), (90, "1m30s"), (3600, "1h"), (2592000, "30d"), (0, "0s"),
     (93784.005, "1d2h3m4s5ms"), (0.0001, "0.0001s"), (-2, "-2s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10 * 365 * 86_400_000))
def test_duration_round_trip(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("512B", 512), ("64KiB", 65536), ("1MiB", 1 << 20), ("256MiB", 256 << 20), ("1GiB", 1 << 30),
     ("2TiB", 2 << 40), ("0B", 0)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1048576", f"invalid size '1048576': missing unit; write 1048576B for bytes, or {SIZE_FORMS}"),
        ("1MB", "invalid size '1MB': unknown unit 'MB'; write 1MiB (binary units, case-sensitive)"),
        ("64kb", "invalid size '64kb': unknown unit 'kb'; write 64KiB (binary units, case-sensitive)"),
        ("1mib", "invalid size '1mib': unknown unit 'mib'; write 1MiB (binary units, case-sensitive)"),
        ("1XiB", f"invalid size '1XiB': unknown unit 'XiB'; expected {SIZE_FORMS}"),
        ("1.5MiB", f"invalid size '1.5MiB': expected {SIZE_FORMS}"),
        ("", f"invalid size '': empty; expected {SIZE_FORMS}"),
        ("2000TiB", "invalid size '2000TiB': larger than 1024TiB"),
    ],
)
def test_bad_sizes(text: str, message: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(text)
    assert str(info.value) == message


@given(st.integers(min_value=0, max_value=1 << 50))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size
