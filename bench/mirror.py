"""Mirror cycle time for the trading engine's keys with 10 symbols, and the scrape time of the result.

Writes the trading engine's key layout (latest signal, a 100-entry history, an active position per
symbol, the financial snapshot, 10 custom metrics) under a namespace of its own on a
Redis database (default: the machine's Redis, database 11), then times:

- one mirror cycle (one MULTI/EXEC of bounded reads + parsing + a new snapshot),
- one background SCAN pass (symbol and custom-metric discovery),
- one scrape of the mirrored families (`generate_latest` of a registry holding only the
  mirror's collector and metrics),

on Redis and on the in-memory backend. Deletes its keys afterwards.

    .venv/bin/python bench/mirror.py [--url redis://127.0.0.1:6379/11] [--cycles 500]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's package, whatever the working directory

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from exporter.cache import Mirror, MirrorCollector, MirrorMetrics, RedisClient  # noqa: E402

SYMBOLS = ["USDCOP", "EURUSD", "GBPUSD", "USDJPY", "USDMXN", "USDBRL", "USDCLP", "USDPEN", "EURCOP",
           "BTCUSD"]


def _iso(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def seed_values(history: int) -> dict[str, object]:
    """Relative key → JSON value (lists are histories, newest first)."""
    out: dict[str, object] = {}
    for n, symbol in enumerate(SYMBOLS):
        signals = [{
            "signal_id": f"sig_{symbol}_{i}", "timestamp": _iso(i * 60), "symbol": symbol,
            "action": ("BUY", "SELL", "HOLD")[i % 3], "confidence": 0.5 + (i % 50) / 100,
            "price": 4250.5 + i, "features": {"rsi": 45, "macd": 0.2}, "model_version": "v1.0",
            "execution_latency_ms": 45,
        } for i in range(history)]
        out[f"signal:history:{symbol}"] = signals
        out[f"position:active:{symbol}"] = {
            "position_id": f"pos_{n}", "symbol": symbol, "side": "LONG", "quantity": 1000,
            "entry_price": 4250.5, "entry_time": _iso(3600), "unrealized_pnl": 12.5}
    out["signal:latest"] = out["signal:history:USDCOP"][0]  # type: ignore[index]
    out["metrics:financial"] = {
        "timestamp": _iso(0), "total_pnl": 1250.75, "win_rate": 0.62, "sharpe_ratio": 1.8,
        "max_drawdown": -0.15, "total_trades": 45, "active_positions": 10, "portfolio_value": 50000}
    for i in range(10):
        out[f"metrics:custom:metric_{i}"] = {"value": i * 1.5, "timestamp": _iso(0)}
    return out


async def load(client: RedisClient, values: dict[str, object]) -> None:
    for key, value in values.items():
        if isinstance(value, list):
            for item in reversed(value):
                await client.list_push(key, item, cap=len(value))
        else:
            await client.set(key, value, ttl=0)


def summary(samples: list[float]) -> dict[str, float]:
    """Milliseconds: median, p95, p99, max."""
    ms = sorted(s * 1000 for s in samples)
    pick = lambda q: ms[min(len(ms) - 1, round(q * (len(ms) - 1)))]  # noqa: E731
    return {"median": statistics.median(ms), "p95": pick(0.95), "p99": pick(0.99), "max": ms[-1]}


async def measure(client: RedisClient, cycles: int) -> dict[str, dict[str, float]]:
    registry = CollectorRegistry(auto_describe=True)
    mirror = Mirror(client, symbols=("USDCOP",), metrics=MirrorMetrics(registry))
    registry.register(MirrorCollector(mirror))
    scans, refreshes, scrapes = [], [], []
    for _ in range(max(1, cycles // 10)):
        t = time.perf_counter()
        await mirror.discover()
        scans.append(time.perf_counter() - t)
    assert len(mirror.mirrored_symbols) == len(SYMBOLS), mirror.mirrored_symbols
    for _ in range(cycles):
        t = time.perf_counter()
        await mirror.refresh()
        refreshes.append(time.perf_counter() - t)
    assert len(mirror.snapshot.signals) == len(SYMBOLS) and len(mirror.snapshot.custom) == 10
    size = len(generate_latest(registry))
    for _ in range(cycles):
        t = time.perf_counter()
        generate_latest(registry)
        scrapes.append(time.perf_counter() - t)
    lines = sum(1 for line in generate_latest(registry).decode().splitlines() if not line.startswith("#"))
    return {"mirror cycle": summary(refreshes), "scan pass": summary(scans),
            "scrape": {**summary(scrapes), "bytes": size, "samples": lines}}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--history", type=int, default=100)
    args = parser.parse_args()
    values = seed_values(args.history)
    namespace = "usdcop_bench_" + uuid.uuid4().hex[:8]
    results = {}
    for name, url in (("redis", args.url), ("memory", None)):
        client = RedisClient(namespace=namespace, url=url)
        try:
            await load(client, values)
            results[name] = await measure(client, args.cycles)
        finally:
            await client.clear()
            await client.close()
    print(f"# mirror benchmark: {len(SYMBOLS)} symbols, history {args.history}, 10 custom metrics, "
          f"{args.cycles} cycles; Python {platform.python_version()} on {platform.machine()}")
    print("| backend | measure | median ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for backend, parts in results.items():
        for what, s in parts.items():
            print(f"| {backend} | {what} | {s['median']:.3f} | {s['p95']:.3f} | {s['p99']:.3f} | {s['max']:.3f} |")
    scrape = results["redis"]["scrape"]
    print(f"\nscrape output: {scrape['samples']:.0f} samples, {scrape['bytes']:.0f} bytes")


if __name__ == "__main__":
    asyncio.run(main())
