"""Probing throughput per CPU: the sidecar against blackbox_exporter, side by side.

    .venv/bin/python bench/compare_probing.py [--rounds 3] [--seconds 10] [--connections 16,64]

Every contender runs alone on one core (BENCH_SUT_CORE, default 1) against the same local
target (bench/rawtarget.py, fresh connection per probe), with the target and the load
generator on the other core. For each concurrency C of --connections, contenders are
interleaved in each round so that they share the machine's background noise:

- blackbox_exporter `/probe` (http module), driven by wrk with C connections;
- the sidecar's `/probe` driven the same way, on uvloop and on asyncio's loop;
- the sidecar in scheduled mode: C services at an interval shorter than it can keep up
  with (C / 4,000 s), so it runs flat out with at most C probes in flight (a service never
  overlaps itself; the ticks that find it busy are skipped and counted), all bookkeeping
  on (state, flap control, histograms, listeners, audit of status changes), on uvloop
  and on asyncio's loop;

Only with --only (keys as printed by --list):
- a bare aiohttp client, 64 requests in flight on fresh connections: the floor any
  aiohttp-based prober pays;
- at a fixed offered load (--rate, default 500 probes/s: 1,000 services at a 2 s
  interval), blackbox_exporter and the sidecar's /probe driven open-loop by
  bench/loadgen.py, and the sidecar scheduling --services services at the matching
  interval. Less load means less batching per event-loop turn, so CPU per probe is
  higher than flat out, for every contender. Keep the rate well under what one core
  does on a busy machine: an open loop past capacity measures queueing, not probing.

Reported per contender: probes per second, CPU microseconds per probe (user + system of
the process, from /proc), probes per CPU-second, RSS; and each one's probes per
CPU-second relative to blackbox_exporter's in the same round. Results go to
bench/results/compare_probing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness as h  # noqa: E402

CONNECTIONS = 64  # the bare client and the fixed-rate runs
SCHEDULED_RATE = 4000.0  # probes/s offered in scheduled mode: more than one core does


def run_blackbox(target_port: int, seconds: float, warmup: float,
                 connections: int = CONNECTIONS) -> dict:
    work = h.workdir("bb")
    proc, port = h.start_blackbox(work)
    try:
        url = h.blackbox_probe_url(port, target_port)
        assert b"probe_success 1" in h.http_get(url), "blackbox_exporter cannot probe the target"
        h.wrk(url, warmup, connections)
        cpu0 = h.cpu_seconds(proc.pid)
        res = h.wrk(url, seconds, connections)
        cpu = h.cpu_seconds(proc.pid) - cpu0
        rss = h.rss_mib(proc.pid)
    finally:
        proc.stop()
    return {"probes_per_s": res.rate, "cpu_us_per_probe": cpu / res.requests * 1e6,
            "errors": res.errors, "rss_mib": rss[0]}


def run_sidecar_probe(target_port: int, seconds: float, warmup: float, uvloop: bool,
                      connections: int = CONNECTIONS) -> dict:
    work = h.workdir("probe")
    config = h.services_yaml(work / "services.yaml", target_port, 1, "30s", prefix="bench")
    proc, port = h.start_sidecar(work, config, scheduler=False, uvloop=uvloop)
    try:
        url = f"http://127.0.0.1:{port}/probe?service=bench-00000"
        assert b"probe_success 1" in h.http_get(url), "the sidecar cannot probe the target"
        h.wrk(url, warmup, connections)
        cpu0 = h.cpu_seconds(proc.pid)
        res = h.wrk(url, seconds, connections)
        cpu = h.cpu_seconds(proc.pid) - cpu0
        rss = h.rss_mib(proc.pid)
    finally:
        proc.stop()
    return {"probes_per_s": res.rate, "cpu_us_per_probe": cpu / res.requests * 1e6,
            "errors": res.errors, "rss_mib": rss[0]}


def _loadgen_rate(url: str, per_second: float, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["taskset", "-c", h.LOAD_CORE, h.PYTHON, str(h.BENCH / "loadgen.py"), url,
                        "--mode", "rate", "--rate", str(per_second), "--seconds", str(seconds),
                        "--out", out.name], check=True, timeout=seconds + 120)
        return json.loads(Path(out.name).read_text())


def run_rate(kind: str, target_port: int, seconds: float, warmup: float, per_second: float) -> dict:
    """blackbox_exporter or the sidecar's /probe at a fixed offered load."""
    work = h.workdir(f"rate-{kind}")
    if kind == "blackbox":
        proc, port = h.start_blackbox(work)
        url = h.blackbox_probe_url(port, target_port)
    else:
        config = h.services_yaml(work / "services.yaml", target_port, 1, "30s", prefix="bench")
        proc, port = h.start_sidecar(work, config, scheduler=False)
        url = f"http://127.0.0.1:{port}/probe?service=bench-00000"
    try:
        _loadgen_rate(url, per_second, warmup)
        cpu0 = h.cpu_seconds(proc.pid)
        res = _loadgen_rate(url, per_second, seconds)
        cpu = h.cpu_seconds(proc.pid) - cpu0
        rss = h.rss_mib(proc.pid)
    finally:
        proc.stop()
    done = res["requests"]
    return {"probes_per_s": done / res["seconds"], "cpu_us_per_probe": cpu / done * 1e6,
            "errors": res["errors"], "rss_mib": rss[0]}


def _probe_totals(port: int) -> tuple[float, float, float]:
    text = h.http_get(f"http://127.0.0.1:{port}/metrics").decode()
    return (h.metric_sum(text, "usdcop_service_probes_total"),
            h.metric_sum(text, "usdcop_service_probes_total", 'result="failure"'),
            h.metric_sum(text, "usdcop_probe_skipped_total"))


def run_sidecar_scheduled(target_port: int, seconds: float, warmup: float, uvloop: bool,
                          services: int, interval: str) -> dict:
    work = h.workdir("sched")
    config = h.services_yaml(work / "services.yaml", target_port, services, interval)
    proc, port = h.start_sidecar(work, config, scheduler=True, uvloop=uvloop)
    try:
        time.sleep(warmup)
        total0, failed0, skipped0 = _probe_totals(port)
        cpu0, t0 = h.cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(seconds)
        total1, failed1, skipped1 = _probe_totals(port)
        cpu, elapsed = h.cpu_seconds(proc.pid) - cpu0, time.perf_counter() - t0
        rss = h.rss_mib(proc.pid)
    finally:
        proc.stop()
    probes = total1 - total0
    return {"probes_per_s": probes / elapsed, "cpu_us_per_probe": cpu / probes * 1e6,
            "errors": int(failed1 - failed0), "skipped": int(skipped1 - skipped0),
            "rss_mib": rss[0]}


def run_bare(target_port: int, seconds: float, uvloop: bool) -> dict:
    argv = ["taskset", "-c", h.SUT_CORE, h.PYTHON, __file__, "--bare", str(target_port),
            "--seconds", str(seconds)]
    if not uvloop:
        argv.append("--asyncio")
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


async def _bare_client(port: int, seconds: float) -> dict:
    """Runs in its own pinned process: 64 GETs in flight, fresh connection each."""
    import resource

    import aiohttp

    url = f"http://127.0.0.1:{port}/health"
    done = 0
    stop_at = 0.0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            async with session.get(url) as resp:
                await resp.read()
            done += 1

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop_at = time.perf_counter() + 2
        await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))  # warm-up
        done = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        stop_at = t0 + seconds
        await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))
        cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"probes_per_s": done / elapsed, "cpu_us_per_probe": cpu / done * 1e6, "errors": 0,
            "rss_mib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--interval", default="300ms", help="scheduled mode: below what one core keeps up with")
    parser.add_argument("--rate", type=float, default=500.0, help="fixed offered load, probes/s")
    parser.add_argument("--connections", default="16,64",
                        help="comma list of concurrencies (wrk connections, scheduled services)")
    parser.add_argument("--only", help="comma list of contender keys to run (see --list)")
    parser.add_argument("--list", action="store_true", help="print the contender keys and exit")
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--asyncio", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        if args.asyncio:
            result = asyncio.run(_bare_client(args.bare, args.seconds))
        else:
            import uvloop
            result = uvloop.run(_bare_client(args.bare, args.seconds))
        print(json.dumps(result))
        return

    contenders = {}
    for c in (int(x) for x in args.connections.split(",")):
        every = f"{c / SCHEDULED_RATE * 1000:g}ms"
        contenders.update({
            f"blackbox@{c}": (f"blackbox_exporter /probe, {c} conns",
                              lambda p, c=c: run_blackbox(p, args.seconds, args.warmup, c)),
            f"probe_uvloop@{c}": (f"sidecar /probe (uvloop), {c} conns",
                                  lambda p, c=c: run_sidecar_probe(p, args.seconds, args.warmup,
                                                                   True, c)),
            f"probe_asyncio@{c}": (f"sidecar /probe (asyncio loop), {c} conns",
                                   lambda p, c=c: run_sidecar_probe(p, args.seconds, args.warmup,
                                                                    False, c)),
            f"sched_uvloop@{c}": (f"sidecar scheduled, {c} services (uvloop)",
                                  lambda p, c=c, e=every: run_sidecar_scheduled(
                                      p, args.seconds, args.warmup, True, c, e)),
            f"sched_asyncio@{c}": (f"sidecar scheduled, {c} services (asyncio loop)",
                                   lambda p, c=c, e=every: run_sidecar_scheduled(
                                       p, args.seconds, args.warmup, False, c, e)),
        })
    extra = {
        "sched_uvloop": (f"sidecar scheduled, {args.services} services (uvloop)",
                         lambda p: run_sidecar_scheduled(p, args.seconds, args.warmup, True,
                                                         args.services, args.interval)),
        "bare_uvloop": ("bare aiohttp client (uvloop)", lambda p: run_bare(p, args.seconds, True)),
        "bare_asyncio": ("bare aiohttp client (asyncio loop)", lambda p: run_bare(p, args.seconds, False)),
        "blackbox_rate": (f"blackbox_exporter /probe at {args.rate:g}/s",
                          lambda p: run_rate("blackbox", p, args.seconds, args.warmup, args.rate)),
        "probe_rate": (f"sidecar /probe at {args.rate:g}/s (uvloop)",
                       lambda p: run_rate("sidecar", p, args.seconds, args.warmup, args.rate)),
        "sched_rate": (f"sidecar scheduled at {args.rate:g}/s (uvloop)",
                       lambda p: run_sidecar_scheduled(p, args.seconds, args.warmup, True, args.services,
                                                       f"{args.services / args.rate * 1000:g}ms")),
    }
    if args.list:
        for key, (label, _run) in {**contenders, **extra}.items():
            print(f"{key:<22} {label}")
        return
    if args.only:
        chosen = args.only.split(",")
        every_key = {**contenders, **extra}
        keep = [k for k in every_key if k in chosen or k.startswith("blackbox@")]
        if any(k.endswith("_rate") for k in chosen):
            keep.append("blackbox_rate")
        contenders = {k: every_key[k] for k in every_key if k in keep}
    rounds: list[dict] = []
    meta = h.machine()
    target, target_port = h.start_target()
    try:
        for r in range(args.rounds):
            results = {}
            for key, (label, run) in contenders.items():
                results[key] = run(target_port)
                print(f"round {r + 1} {label:<47} {results[key]['probes_per_s']:7.0f} probes/s "
                      f"{results[key]['cpu_us_per_probe']:6.0f} µs CPU/probe "
                      f"RSS {results[key]['rss_mib']:5.1f} MiB errors {results[key]['errors']}",
                      flush=True)
            rounds.append(results)
    finally:
        target.stop()

    print(f"\n{'contender':<49} {'probes/s':>22} {'CPU µs/probe':>20} {'probes/CPU-s vs blackbox':>26}")
    summary = {}
    for key, (label, _run) in contenders.items():
        rates = [r[key]["probes_per_s"] for r in rounds]
        cpus = [r[key]["cpu_us_per_probe"] for r in rounds]
        conns = key.partition("@")[2] or str(CONNECTIONS)
        peer = "blackbox_rate" if key.endswith("_rate") else f"blackbox@{conns}"
        if peer not in rounds[0]:
            peer = next(k for k in rounds[0] if k.startswith("blackbox@"))
        ratios = [r[peer]["cpu_us_per_probe"] / r[key]["cpu_us_per_probe"] for r in rounds]
        summary[key] = {"label": label, "probes_per_s": rates, "cpu_us_per_probe": cpus,
                        "ratio_vs_blackbox": ratios,
                        "rss_mib": [r[key]["rss_mib"] for r in rounds],
                        "errors": [r[key]["errors"] for r in rounds]}
        print(f"{label:<49} {h.spread_of(rates):>22} {h.spread_of(cpus):>20} "
              f"{h.spread_of(ratios, 2):>26}")
    out = h.save("compare_probing", {"machine": meta, "args": vars(args), "rounds": rounds,
                                     "summary": summary})
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
