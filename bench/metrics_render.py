"""/metrics at scale: render time, size, and the longest event-loop stall a scrape causes.

    .venv/bin/python bench/metrics_render.py [--services 100,1000,5000] [--repeat 5]

For each size, the whole sidecar is built (create_app, every feature's metrics on one
registry) from a services file of N http services, and every service gets a probe result
(phases, reported details) through the checker, as real probes would leave it. Then:

- prometheus_client's generate_latest() over the registry: what /metrics cost before;
- the sidecar's renderer (exporter.exposition) when nothing changed since the last scrape,
  and when every service has a new result since the last scrape (the worst case: every
  block re-rendered);
- through HTTP: the app served on loopback (uvloop when installed), /metrics fetched by
  curl in another process, with and without gzip, every service changed before each
  scrape, and again with nothing changed since the scrape before; a task on the loop measures the longest gap between its 1 ms wake-ups, in wall
  time and in the loop thread's CPU time (the machine is shared: the OS may give the core
  to another process for a few ms, which is no stall of ours). The old path's stall is
  measured the same way around generate_latest(), and an idle 50 ms as a baseline.

Times are wall-clock medians over --repeat runs (the machine is shared: see the
min–max). Results go to bench/results/metrics_render.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness as h  # noqa: E402
from loguru import logger  # noqa: E402

logger.remove()

from aiohttp import web  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402

from exporter.api.keys import CHECKER, REGISTRY  # noqa: E402
from exporter.app import create_app  # noqa: E402
from exporter.cli import _settle_gc  # noqa: E402
from exporter.exposition import render_now  # noqa: E402
from exporter.health.result import ProbeResult  # noqa: E402
from exporter.settings import load_settings  # noqa: E402

PHASES = {"resolve": 0.0, "connect": 0.00021, "tls": 0.0, "processing": 0.0118, "transfer": 0.00004}


def build(count: int):
    work = h.workdir("render")
    config = h.services_yaml(work / "services.yaml", 9, count, "30s")
    settings = load_settings({
        "EXPORTER_CONFIG": str(config), "EXPORTER_SCHEDULER": "off",
        "AUDIT_SQLITE_PATH": str(work / "audit.sqlite3"), "AUDIT_SPOOL_DIR": str(work / "spool"),
        "AUDIT_CHECKPOINT_DIR": str(work / "checkpoints"),
    })
    app = create_app(settings)
    return app, app[CHECKER]


def churn(checker, k: int) -> None:
    """A new probe result for every service (what a scrape interval brings at worst)."""
    for i, name in enumerate(checker.states):
        checker.record(name, ProbeResult(
            success=True, duration_s=0.004 + ((i * 7 + k) % 50) / 1000, http_status=200,
            phases=PHASES, details={"uptime": 3600.0 + k, "requests_per_minute": 120,
                                    "error_rate": 0.001, "memory_usage_mb": 256},
        ))


def timed(fn, repeat: int, before=None) -> list[float]:
    out = []
    for k in range(repeat):
        if before:
            before(k)
        began = time.perf_counter()
        fn()
        out.append((time.perf_counter() - began) * 1000)
    return out


async def stall_during(job) -> tuple[float, float, float]:
    """(longest loop gap beyond the 1 ms sleep, the same counted in this thread's CPU time,
    job's wall time), in ms. The CPU figure leaves out time the OS gave other processes
    on this shared core: it is how long the loop itself ran without yielding."""
    gaps: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def monitor() -> None:
        while not done.is_set():
            began, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            gaps.append((time.perf_counter() - began - 0.001, time.thread_time() - cpu))

    watcher = asyncio.ensure_future(monitor())
    await asyncio.sleep(0.01)
    gaps.clear()
    began = time.perf_counter()
    await job()
    wall = time.perf_counter() - began
    done.set()
    await watcher
    if not gaps:
        return 0.0, 0.0, wall * 1000
    return max(g for g, _ in gaps) * 1000, max(c for _, c in gaps) * 1000, wall * 1000


async def http_stalls(app, checker, repeat: int) -> dict:
    app.on_startup.append(_settle_gc)  # as `serve` does
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = h.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/metrics"
    registry = app[REGISTRY]
    keys = ("fast", "fast_gzip", "unchanged", "unchanged_gzip", "generic", "idle")
    out: dict[str, list] = {f"{key}_{what}": [] for key in keys
                            for what in ("stall_ms", "stall_cpu_ms", "wall_ms")}

    # curl runs from a helper process started before measuring: forking a big process
    # from the loop would stall it by itself.
    helper = await asyncio.create_subprocess_exec(
        "taskset", "-c", h.LOAD_CORE, "sh", "-c",
        'while read gz; do if [ "$gz" = 1 ]; then set -- -H "Accept-Encoding: gzip"; '
        f'else set --; fi; curl -sf -o /dev/null "$@" {url} && echo ok || echo fail; done',
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

    async def curl(gz: bool) -> None:
        helper.stdin.write(b"1\n" if gz else b"0\n")
        assert (await helper.stdout.readline()).strip() == b"ok"

    async def generic() -> None:
        generate_latest(registry)  # what the handler did before, on the loop

    try:
        for k in range(repeat):
            for key, job in (("fast", lambda: curl(False)), ("fast_gzip", lambda: curl(True)),
                             ("unchanged", lambda: curl(False)),
                             ("unchanged_gzip", lambda: curl(True)),
                             ("generic", generic), ("idle", lambda: asyncio.sleep(0.05))):
                if key.startswith("unchanged"):
                    await curl(key.endswith("gzip"))  # nothing changes after this scrape
                else:
                    churn(checker, 1000 + k)
                await asyncio.sleep(0.5)  # let listeners' background work (publishing) settle
                stall, stall_cpu, wall = await stall_during(job)
                out[f"{key}_stall_ms"].append(stall)
                out[f"{key}_stall_cpu_ms"].append(stall_cpu)
                out[f"{key}_wall_ms"].append(wall)
    finally:
        helper.stdin.close()
        await helper.wait()
        await runner.cleanup()
    return out


def run_size(count: int, repeat: int) -> dict:
    app, checker = build(count)
    registry = app[REGISTRY]
    churn(checker, 0)
    body, _ = render_now(registry)  # first render: every block built
    assert body == generate_latest(registry), "fast and generic renderings differ"
    result = {
        "services": count, "bytes": len(body), "lines": body.count(b"\n"),
        "gzip_bytes": len(gzip.compress(body, 1)),
        "generic_ms": timed(lambda: generate_latest(registry), max(2, repeat // 2)),
        "fast_unchanged_ms": timed(lambda: render_now(registry), repeat),
        # every service's new result recorded (the collector re-renders its lines then)
        "record_all_ms": timed(lambda: churn(checker, 500), repeat),
        "fast_all_changed_ms": timed(lambda: render_now(registry), repeat,
                                     before=lambda k: churn(checker, k + 1)),
    }
    try:
        import uvloop
        stalls = uvloop.run(http_stalls(app, checker, repeat))
    except ImportError:
        stalls = asyncio.run(http_stalls(app, checker, repeat))
    result.update(stalls)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="100,1000,5000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one, args.repeat)))
        return
    subprocess.run(["curl", "--version"], capture_output=True, check=True)
    meta = h.machine()
    sizes = [int(x) for x in args.services.split(",")]
    results = []
    for count in sizes:
        # Each size in its own pinned process, so sizes do not share a heap.
        out = subprocess.run(["taskset", "-c", h.SUT_CORE, h.PYTHON, __file__, "--one", str(count),
                              "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{count:>5} services: {r['bytes'] / 2**20:5.1f} MiB, {r['lines']} lines, gzip "
              f"{r['gzip_bytes'] / 2**10:6.0f} KiB | generic {h.spread_of(r['generic_ms'])} ms | "
              f"fast unchanged {h.spread_of(r['fast_unchanged_ms'], 1)} ms, all changed "
              f"{h.spread_of(r['fast_all_changed_ms'], 1)} ms (recording all {h.spread_of(r['record_all_ms'])} ms) | longest stall wall/CPU: fast "
              f"{h.spread_of(r['fast_stall_ms'], 1)}/{h.spread_of(r['fast_stall_cpu_ms'], 1)} ms, gzip "
              f"{h.spread_of(r['fast_gzip_stall_ms'], 1)}/{h.spread_of(r['fast_gzip_stall_cpu_ms'], 1)} ms, "
              f"generic {h.spread_of(r['generic_stall_ms'])} ms, idle loop "
              f"{h.spread_of(r['idle_stall_ms'], 1)}/{h.spread_of(r['idle_stall_cpu_ms'], 1)} ms | scrape via HTTP "
              f"{h.spread_of(r['fast_wall_ms'])} ms (gzip {h.spread_of(r['fast_gzip_wall_ms'])}), "
              f"unchanged {h.spread_of(r['unchanged_wall_ms'])} ms "
              f"(gzip {h.spread_of(r['unchanged_gzip_wall_ms'])}, longest stall CPU "
              f"{h.spread_of(r['unchanged_gzip_stall_cpu_ms'], 1)} ms)",
              flush=True)
    out = h.save("metrics_render", {"machine": meta, "args": vars(args), "results": results})
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
