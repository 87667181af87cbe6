"""Helpers shared by the cache tests: valid values and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def iso(seconds_ago: float = 0.0) -> str:
    """An ISO-8601 UTC time `seconds_ago` in the past."""
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def make_signal(symbol: str = "USDCOP", seconds_ago: float = 0.0, **fields) -> dict:
    """A valid signal, as a trading engine writes it."""
    signal = {
        "signal_id": f"sig_{symbol}_{seconds_ago}",
        "timestamp": iso(seconds_ago),
        "symbol": symbol,
        "action": "BUY",
        "confidence": 0.85,
        "price": 4250.5,
        "features": {"rsi": 45, "macd": 0.2},
        "model_version": "v1.0",
        "execution_latency_ms": 45,
    }
    signal.update(fields)
    return {k: v for k, v in signal.items() if v is not None}
