"""Scheduler throughput: N http services at a short interval against one local target.

    .venv/bin/python bench/scheduler.py [--services 1000] [--interval 1] [--seconds 30]

The target runs in its own process (bench/target.py). Reports probes per second
sustained, the schedule-lag p50/p99 (actual minus planned start), skipped ticks,
failures, and the sidecar process' CPU time per probe and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from exporter.config.model import Config, ServiceConfig
from exporter.health.checker import HealthChecker
from exporter.health.registry import ServiceRegistry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def run(args: argparse.Namespace, port: int) -> dict:
    url = f"http://127.0.0.1:{port}/health"
    services = tuple(
        ServiceConfig(name=f"svc-{i:05d}", type="http", url=url, interval=args.interval, timeout=5.0)
        for i in range(args.services)
    )
    checker = HealthChecker(ServiceRegistry(Config(services=services)), concurrency=args.concurrency)
    lags: list[float] = []
    await checker.start_monitoring(lag_observer=lags.append)
    await asyncio.sleep(args.warmup)
    lags.clear()
    before = {n: dict(s.probes) for n, s in checker.states.items()}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.sleep(args.seconds)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    after = {n: dict(s.probes) for n, s in checker.states.items()}
    await checker.stop_monitoring()
    ok = sum(after[n]["success"] - before[n]["success"] for n in after)
    failed = sum(after[n]["failure"] - before[n]["failure"] for n in after)
    skipped = sum(s.skipped for s in checker.states.values())
    total = ok + failed
    return {
        "services": args.services,
        "interval_s": args.interval,
        "probes_per_s": round(total / elapsed, 1),
        "expected_per_s": round(args.services / args.interval, 1),
        "failures": failed,
        "skipped": skipped,
        "lag_p50_ms": round(pct(lags, 0.5) * 1000, 2),
        "lag_p99_ms": round(pct(lags, 0.99) * 1000, 2),
        "lag_max_ms": round(max(lags) * 1000, 2) if lags else None,
        "cpu_us_per_probe": round(cpu / total * 1e6, 1) if total else None,
        "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=12.0, help="first probes spread over 10 s")
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    port = free_port()
    target = subprocess.Popen([sys.executable, str(Path(__file__).with_name("target.py")), str(port)])
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        result = asyncio.run(run(args, port))
    finally:
        target.terminate()
        target.wait()
    for key, value in result.items():
        print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
