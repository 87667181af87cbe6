"""Memory and schedule lag of one sidecar with 1,000 services over a few minutes.

    .venv/bin/python bench/soak.py [--services 1000] [--interval 2s] [--minutes 3]

The sidecar (`usdcop-exporter serve`, pinned to BENCH_SUT_CORE) probes N http services
on a local target at the given interval, while this script scrapes /metrics every 15 s
with gzip, as Prometheus would, and samples the sidecar's RSS every 5 s. Reported: RSS
at start, end and peak, its slope over the second half of the run (flat means no leak),
CPU used, probes, failures and skipped ticks, and the schedule lag (actual minus planned
start) from the usdcop_probe_schedule_lag_seconds histogram over the run, p50/p99
interpolated within buckets as histogram_quantile() does. Results go to
bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

LAG = "usdcop_probe_schedule_lag_seconds"


def lag_buckets(text: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the lag histogram."""
    out = []
    for line in text.splitlines():
        if line.startswith(f"{LAG}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(out)


def quantile(q: float, start: list[tuple[float, float]], end: list[tuple[float, float]]) -> float:
    """histogram_quantile() over the increase between two scrapes."""
    counts = [(le, e - s) for (le, e), (_, s) in zip(end, start, strict=True)]
    total = counts[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cum in counts:
        if cum >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(cum - below, 1e-12)
        lower, below = le, cum
    return lower


def slope_mib_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(m for _, m in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    return sum((t - mx) * (m - my) for t, m in samples) / var * 60 if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--interval", default="2s")
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    meta = h.machine()
    target, target_port = h.start_target()
    work = h.workdir("soak")
    config = h.services_yaml(work / "services.yaml", target_port, args.services, args.interval)
    proc, port = h.start_sidecar(work, config, scheduler=True)
    url = f"http://127.0.0.1:{port}/metrics"
    rss: list[tuple[float, float]] = []
    scrapes: list[float] = []  # ms per gzip scrape, as curl-like clients see it
    try:
        time.sleep(12)  # every service has had its first probe (within 10 s)
        began = time.monotonic()
        first = h.http_get(url).decode()
        cpu0 = h.cpu_seconds(proc.pid)
        next_scrape = began + 15
        while (now := time.monotonic()) - began < args.minutes * 60:
            rss.append((now - began, h.rss_mib(proc.pid)[0]))
            if now >= next_scrape:
                t0 = time.perf_counter()
                h.http_get(url, headers={"Accept-Encoding": "gzip"})
                scrapes.append((time.perf_counter() - t0) * 1000)
                next_scrape += 15
            time.sleep(5)
        last = h.http_get(url).decode()
        cpu = h.cpu_seconds(proc.pid) - cpu0
        elapsed = time.monotonic() - began
        peak = h.rss_mib(proc.pid)[1]
    finally:
        proc.stop()
        target.stop()
    probes = h.metric_sum(last, "usdcop_service_probes_total") - h.metric_sum(first, "usdcop_service_probes_total")
    failed = (h.metric_sum(last, "usdcop_service_probes_total", 'result="failure"')
              - h.metric_sum(first, "usdcop_service_probes_total", 'result="failure"'))
    skipped = h.metric_sum(last, "usdcop_probe_skipped_total") - h.metric_sum(first, "usdcop_probe_skipped_total")
    start, end = lag_buckets(first), lag_buckets(last)
    half = [s for s in rss if s[0] >= elapsed / 2]
    result = {
        "services": args.services, "interval": args.interval, "seconds": round(elapsed),
        "probes_per_s": probes / elapsed, "failures": failed, "skipped": skipped,
        "cpu_share": cpu / elapsed, "cpu_us_per_probe": cpu / probes * 1e6 if probes else None,
        "rss_start_mib": rss[0][1], "rss_end_mib": rss[-1][1], "rss_peak_mib": peak,
        "rss_slope_second_half_mib_per_min": slope_mib_per_min(half),
        "lag_p50_ms": quantile(0.5, start, end) * 1000, "lag_p99_ms": quantile(0.99, start, end) * 1000,
        "lag_over_1s": end[-1][1] - start[-1][1] - (dict(end).get(1.0, 0) - dict(start).get(1.0, 0)),
        "scrape_ms_median": h.pct(scrapes, 0.5) if scrapes else None,
        "scrape_ms_max": max(scrapes) if scrapes else None,
        "rss_samples": rss,
    }
    for key, value in result.items():
        if key != "rss_samples":
            print(f"{key:>36}: {value:.3f}" if isinstance(value, float) else f"{key:>36}: {value}")
    name = "soak" if args.services == 1000 else f"soak_{args.services}"
    out = h.save(name, {"machine": meta, "args": vars(args), "result": result})
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
