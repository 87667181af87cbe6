"""Micro-benchmark: probes per second of the HTTP prober against a local target.

The target (aiohttp, the health format of docs/api.md) runs in a separate process so that the
prober's process measures only itself. Runs N probes one after another, then N probes
64 at a time; each probe opens a connection of its own.

    .venv/bin/python bench/probe_micro.py [--probes 2000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import time

from aiohttp import web

BODY = json.dumps({
    "service": "bench", "status": "healthy", "latency_ms": 1,
    "details": {"uptime": 1, "requests_per_minute": 60, "error_rate": 0.0, "memory_usage_mb": 64},
    "metadata": {},
}).encode()


def _serve(conn) -> None:
    async def health(_request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    conn.send(sock.getsockname()[1])
    app = web.Application()
    app.router.add_get("/health", health)
    web.run_app(app, sock=sock, access_log=None, print=None, handle_signals=True)


async def _run(url: str, total: int, concurrency: int) -> tuple[float, int]:
    from exporter.config.model import ServiceConfig
    from exporter.health.probes import ProbeContext, run_probe

    service = ServiceConfig(name="bench", type="http", url=url)
    ctx = ProbeContext(timeout=10.0)
    failures = 0
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal failures
        async with gate:
            result = await run_probe(service, ctx)
            failures += not result.success

    for _ in range(min(50, total)):  # warm-up: imports, first connections
        await one()
    failures = 0
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed = time.perf_counter() - start
    return total / elapsed, failures


def main() -> None:
    """Run the benchmark and print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{parent.recv()}/health"
        for concurrency in (1, args.concurrency):
            rate, failures = asyncio.run(_run(url, args.probes, concurrency))
            print(f"concurrency {concurrency:>3}: {rate:8.0f} probes/s"
                  f"  ({args.probes} probes, {failures} failed)")
    finally:
        server.terminate()
        server.join(10)


if __name__ == "__main__":
    main()
