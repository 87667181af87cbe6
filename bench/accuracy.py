"""Timing accuracy: reported probe duration minus a target's known delay.

    .venv/bin/python bench/accuracy.py [--rounds 2] [--seconds 8] [--delay-ms 100]

The target (bench/rawtarget.py) answers every request after exactly --delay-ms; whatever
an exporter reports beyond that is its own overhead (connection set-up on loopback is
tens of microseconds). Contenders, each pinned alone to one core:

- blackbox_exporter /probe (http module);
- the sidecar's /probe, with one service configured and the scheduler off;
- the sidecar "loaded": scheduling 1,000 other services (10 s interval, a second fast
  target) while answering /probe, so its /metrics carries 1,000 services' results.

Load, from bench/loadgen.py on the other core: 1 probe at a time; 64 at a time, steady;
64 started together every 0.5 s (bursts, as Prometheus' scrape alignment can cause).
Each once without and once with /metrics scraped every 0.5 s alongside (gzip, as
Prometheus asks). Reported: overhead median and p99 in milliseconds, and the scrape
times. Results go to bench/results/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

LOADS = (
    ("c1", "1 at a time", ["--mode", "steady", "--concurrency", "1"]),
    ("c64", "64 at a time", ["--mode", "steady", "--concurrency", "64"]),
    ("burst64", "bursts of 64", ["--mode", "bursts", "--concurrency", "64", "--period", "0.5"]),
)


def loadgen(url: str, extra: list[str], seconds: float, scrape: str | None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = ["taskset", "-c", h.LOAD_CORE, h.PYTHON, str(h.BENCH / "loadgen.py"), url, *extra,
                "--seconds", str(seconds), "--bursts", str(int(seconds / 0.5)), "--out", out.name]
        if scrape:
            argv += ["--scrape", scrape, "--scrape-every", "0.5"]
        subprocess.run(argv, check=True, timeout=seconds + 180)
        return json.loads(Path(out.name).read_text())


def measure(url: str, metrics_url: str, seconds: float, delay: float) -> dict:
    results = {}
    loadgen(url, ["--mode", "steady", "--concurrency", "8"], 1.0, None)  # warm-up
    for key, _label, extra in LOADS:
        for scrape in (False, True):
            res = loadgen(url, extra, seconds, metrics_url if scrape else None)
            over = [(d - delay) * 1000 for d in res["durations"]]
            results[f"{key}{'+scrape' if scrape else ''}"] = {
                "probes": len(over), "errors": res["errors"],
                "median_ms": h.pct(over, 0.5), "p99_ms": h.pct(over, 0.99),
                "max_ms": max(over) if over else None,
                "scrape_ms_median": h.pct(res["scrape_ms"], 0.5) if res["scrape_ms"] else None,
                "scrape_ms_max": max(res["scrape_ms"]) if res["scrape_ms"] else None,
            }
    return results


def run_blackbox(target_port: int, seconds: float, delay: float, _fast_port: int) -> dict:
    work = h.workdir("acc-bb")
    proc, port = h.start_blackbox(work)
    try:
        return measure(h.blackbox_probe_url(port, target_port), f"http://127.0.0.1:{port}/metrics",
                       seconds, delay)
    finally:
        proc.stop()


def run_sidecar(target_port: int, seconds: float, delay: float, fast_port: int, loaded: bool) -> dict:
    work = h.workdir("acc-sc")
    others = ((("svc", 1000, f"http://127.0.0.1:{fast_port}/health", "10s"),) if loaded else ())
    config = h.services_yaml(work / "services.yaml", target_port, 1, "1h", prefix="delayed",
                             extra=others)
    proc, port = h.start_sidecar(work, config, scheduler=loaded)
    try:
        if loaded:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # every service has a result
                text = h.http_get(f"http://127.0.0.1:{port}/metrics").decode()
                if h.metric_sum(text, "usdcop_service_up") >= 1000:
                    break
                time.sleep(1)
        url = f"http://127.0.0.1:{port}/probe?service=delayed-00000"
        return measure(url, f"http://127.0.0.1:{port}/metrics", seconds, delay)
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    contenders = {
        "blackbox": ("blackbox_exporter /probe", run_blackbox),
        "sidecar": ("sidecar /probe", lambda *a: run_sidecar(*a, loaded=False)),
        "loaded": ("sidecar /probe + 1,000 scheduled services", lambda *a: run_sidecar(*a, loaded=True)),
    }
    meta = h.machine()
    target, target_port = h.start_target(args.delay_ms)
    fast, fast_port = h.start_target()
    rounds = []
    try:
        for r in range(args.rounds):
            results = {}
            for key, (label, run) in contenders.items():
                results[key] = run(target_port, args.seconds, delay, fast_port)
                for cond, res in results[key].items():
                    print(f"round {r + 1} {label:<42} {cond:<15} median {res['median_ms']:7.2f} ms "
                          f"p99 {res['p99_ms']:7.2f} ms  ({res['probes']} probes, {res['errors']} errors"
                          + (f", scrape {res['scrape_ms_median']:.1f} ms" if res["scrape_ms_median"] else "")
                          + ")", flush=True)
            rounds.append(results)
    finally:
        target.stop()
        fast.stop()
    print(f"\noverhead = reported − {args.delay_ms:g} ms; median and p99 in ms, over {args.rounds} rounds")
    summary = {}
    conditions = list(rounds[0]["blackbox"])
    print(f"{'condition':<16}" + "".join(f"{label:>44}" for label, _ in contenders.values()))
    for cond in conditions:
        row = f"{cond:<16}"
        for key in contenders:
            med = [r[key][cond]["median_ms"] for r in rounds]
            p99 = [r[key][cond]["p99_ms"] for r in rounds]
            summary.setdefault(key, {})[cond] = {"median_ms": med, "p99_ms": p99}
            row += f"{h.spread_of(med, 2) + ' / ' + h.spread_of(p99, 1):>44}"
        print(row)
    out = h.save("accuracy", {"machine": meta, "args": vars(args), "rounds": rounds, "summary": summary})
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
