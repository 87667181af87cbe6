"""Sustained POST /api/health/latency throughput next to a bare aiohttp JSON endpoint, same run.

Each server runs in its own process; the load comes from this process over keep-alive
connections with pre-built requests (raw asyncio streams, so the client costs little next
to the server). Scenarios alternate over several rounds and the median is reported, as
records per second and as the server's CPU time per record (read from /proc: steadier
than throughput on a machine shared with other work).

    .venv/bin/python bench/latency_api.py [--seconds 3] [--rounds 3] [--connections 32]
                                          [--loop uvloop|asyncio]

Every server runs on the same event loop: by default the sidecar's own (uvloop on Linux).
Servers: `bare` (parses the JSON body and answers {"accepted": n}, nothing else),
`latency` (the latency feature behind the sidecar's error middleware), and `sidecar`
(the whole create_app with auth and HTTP metrics) when create_app wires the feature.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's package, whatever the working directory
URL = "/api/health/latency"
TOKEN = "bench-token"
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def _record(i: int) -> dict:
    return {
        "service": f"svc-{i % 4}",
        "operation": f"op-{i % 5}",
        "latency_ms": 1.0 + (i * 7919) % 900,
        "success": i % 17 != 0,
        "trace_id": f"{i:032x}",
    }


def _request(body: bytes, port: int) -> bytes:
    return (
        f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def payloads(port: int) -> dict[str, tuple[int, list[bytes]]]:
    """Pre-built requests: records per request, and a few variants to rotate through."""
    single = [_request(json.dumps(_record(i)).encode(), port) for i in range(20)]
    batch = [
        _request(json.dumps({"records": [_record(i * 100 + j) for j in range(100)]}).encode(), port)
        for i in range(5)
    ]
    return {"single": (1, single), "batch100": (100, batch)}


# ---- servers -------------------------------------------------------------------------------


def serve(mode: str, port: int, loop: str = "asyncio") -> None:
    """Run one server in this process until killed, on `loop` (uvloop or asyncio)."""
    from aiohttp import web

    if loop == "uvloop":
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    if mode == "bare":

        async def bare(request: web.Request) -> web.Response:
            body = await request.json()
            n = len(body["records"]) if "records" in body else 1
            return web.json_response({"accepted": n})

        app = web.Application(client_max_size=8 << 20)
        app.router.add_post(URL, bare)
    elif mode == "latency":
        from types import SimpleNamespace

        from prometheus_client import CollectorRegistry

        from exporter.api import latency
        from exporter.api.errors import error_middleware
        from exporter.api.keys import READY, REGISTRY, SETTINGS
        from exporter.api.routes import add_routes

        app = web.Application(middlewares=[error_middleware], client_max_size=8 << 20)
        app[SETTINGS] = SimpleNamespace(latency_window=10_000, latency_max_pairs=500)
        app[REGISTRY] = CollectorRegistry()
        app[READY] = {}
        add_routes(app, latency.setup(app))
    else:
        from exporter.app import create_app
        from exporter.settings import Settings

        scratch = Path(tempfile.mkdtemp(prefix="usdcop-bench-"))
        config = scratch / "services.yaml"
        config.write_text("services: []\n")
        settings = Settings(
            config=str(config),
            scheduler=False,
            api_token=TOKEN,
            listen_host="127.0.0.1",
            listen_port=port,
            audit_sqlite_path=str(scratch / "audit.sqlite3"),
            audit_spool_dir=str(scratch / "spool"),
            audit_checkpoint_dir=str(scratch / "checkpoints"),
        )
        app = create_app(settings)
    print("ready", flush=True)
    try:
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    finally:
        if mode == "sidecar":
            shutil.rmtree(scratch, ignore_errors=True)


def sidecar_available() -> str | None:
    """None when create_app serves the latency routes, else why not."""
    try:
        from exporter import app as app_module
        from exporter.api import latency
    except Exception as exc:  # the composition root may not import in a partial tree
        return f"create_app not importable: {exc}"
    if latency not in app_module.FEATURES:
        return "latency is not in create_app's FEATURES yet"
    return None


# ---- load ----------------------------------------------------------------------------------


async def _worker(
    port: int, requests: list[bytes], offset: int, stop_at: float, out: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = bad = 0
    i = offset
    try:
        while time.monotonic() < stop_at:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            match = _LENGTH.search(head)
            if match:
                await reader.readexactly(int(match.group(1)))
            if head[9:12] != b"200":
                bad += 1
            done += 1
    finally:
        writer.close()
    out[0] += done
    out[1] += bad


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    port: int, requests: list[bytes], seconds: float, connections: int, pid: int | None = None
) -> tuple[float, float | None, int]:
    """Requests per second over `seconds`, the server's CPU seconds per request (when `pid`
    is given), and how many answers were not 200."""
    warm = [0, 0]
    await asyncio.gather(
        *(_worker(port, requests, c, time.monotonic() + 0.5, warm) for c in range(connections))
    )
    out = [0, 0]
    cpu = cpu_seconds(pid) if pid else 0.0
    start = time.monotonic()
    await asyncio.gather(
        *(_worker(port, requests, c, start + seconds, out) for c in range(connections))
    )
    elapsed = time.monotonic() - start
    per_request = (cpu_seconds(pid) - cpu) / out[0] if pid and out[0] else None
    return out[0] / elapsed, per_request, out[1]


def default_loop() -> str:
    """The sidecar's own default: uvloop where it is installed (Linux), else asyncio's loop."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def start_server(mode: str, loop: str) -> tuple[subprocess.Popen, int]:
    """Start `mode` in a child process on a free loopback port; wait for its ready line."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, __file__, "serve", mode, str(port), loop],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{mode} server did not start")
    return proc, port


async def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=default_loop(),
                        help="event loop of every server (default: the sidecar's own default)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "latency_api.json"))
    args = parser.parse_args()

    modes = ["bare", "latency"]
    why_not = sidecar_available()
    if why_not is None:
        modes.append("sidecar")
    else:
        print(f"sidecar mode skipped: {why_not}")
    servers = {mode: start_server(mode, args.loop) for mode in modes}
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    errors = 0
    try:
        for _, port in servers.values():
            asyncio.run(wait_listening(port))
        for _ in range(args.rounds):
            for kind in ("single", "batch100"):
                for mode, (proc, port) in servers.items():
                    per, requests = payloads(port)[kind]
                    rate, cpu, bad = asyncio.run(
                        load(port, requests, args.seconds, args.connections, proc.pid)
                    )
                    errors += bad
                    rates.setdefault((mode, kind), []).append(rate * per)
                    cpus.setdefault((mode, kind), []).append(cpu / per)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)

    result = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "loop": args.loop,
        "non_200_answers": errors,
        "records_per_second": {},
        "ratio_to_bare": {},
        "server_cpu_us_per_record": {},
        "cpu_ratio_to_bare": {},
        "round_ratios_to_bare": {},
    }
    print(
        f"\n{'server':<9}{'payload':<10}{'records/s':>11}{'requests/s':>11}{'vs bare':>8}"
        f"{'CPU us/record':>14}{'vs bare':>8}  rounds vs bare (min-max)"
    )
    for (mode, kind), values in rates.items():
        key, per = f"{mode}/{kind}", 1 if kind == "single" else 100
        median = statistics.median(values)
        ratio = median / statistics.median(rates[("bare", kind)])
        cpu = statistics.median(cpus[(mode, kind)]) * 1e6
        cpu_ratio = statistics.median(cpus[("bare", kind)]) * 1e6 / cpu
        result["records_per_second"][key] = round(median)
        result["ratio_to_bare"][key] = round(ratio, 3)
        result["server_cpu_us_per_record"][key] = round(cpu, 1)
        result["cpu_ratio_to_bare"][key] = round(cpu_ratio, 3)
        rounds = [v / b for v, b in zip(values, rates[("bare", kind)], strict=True)]
        result["round_ratios_to_bare"][key] = [round(r, 3) for r in rounds]
        print(
            f"{mode:<9}{kind:<10}{median:>11,.0f}{median / per:>11,.0f}{ratio:>8.2f}"
            f"{cpu:>14.1f}{cpu_ratio:>8.2f}  {min(rounds):.2f}-{max(rounds):.2f}"
        )
    print(
        f"non-200 answers: {errors}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(main())
