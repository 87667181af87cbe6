"""A small load generator for /probe endpoints (the sidecar's and blackbox_exporter's).

    python bench/loadgen.py URL --mode steady --concurrency 64 --seconds 10
    python bench/loadgen.py URL --mode bursts --concurrency 64 --bursts 20 --period 0.5
    python bench/loadgen.py URL --mode rate --rate 1000 --seconds 10
    ... [--scrape METRICS_URL --scrape-every 0.5]

Prints (or writes to --out) one JSON object: the `probe_duration_seconds` each answer
reported, request and error counts, the seconds the load ran, and, with --scrape, how
long each /metrics scrape that ran alongside took. Keep-alive connections to the exporter under test (as Prometheus keeps them);
what the exporter does towards its target is its own business.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

import aiohttp

DURATION = re.compile(rb"^probe_duration_seconds ([0-9.eE+-]+)$", re.M)


class Run:
    """What one load run saw."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.requests = 0
        self.errors = 0
        self.scrape_ms: list[float] = []

    async def probe(self, session: aiohttp.ClientSession, url: str) -> None:
        self.requests += 1
        try:
            async with session.get(url) as resp:
                body = await resp.read()
                if resp.status != 200 or b"probe_success 1" not in body:
                    self.errors += 1
                    return
        except (TimeoutError, aiohttp.ClientError):
            self.errors += 1
            return
        match = DURATION.search(body)
        if match:
            self.durations.append(float(match.group(1)))


async def steady(run: Run, session, url: str, concurrency: int, seconds: float) -> None:
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            await run.probe(session, url)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bursts(run: Run, session, url: str, size: int, count: int, period: float) -> None:
    """`count` bursts of `size` probes started together, one burst every `period` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(count):
        delay = start + k * period - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await asyncio.gather(*(run.probe(session, url) for _ in range(size)))


async def rate(run: Run, session, url: str, per_second: float, seconds: float) -> None:
    """Open loop: a new probe every 1/rate seconds, however many are still in flight."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = int(per_second * seconds)
    tasks = []
    for k in range(total):
        delay = start + k / per_second - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(run.probe(session, url)))
    await asyncio.gather(*tasks)


async def scraper(run: Run, session, url: str, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        began = time.perf_counter()
        async with session.get(url, headers={"Accept-Encoding": "gzip"}) as resp:
            await resp.read()
        run.scrape_ms.append((time.perf_counter() - began) * 1000)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


async def main_async(args: argparse.Namespace) -> dict:
    run = Run()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stop = asyncio.Event()
        scraping = None
        if args.scrape:
            scraping = asyncio.ensure_future(scraper(run, session, args.scrape, args.scrape_every, stop))
        began = time.perf_counter()
        try:
            if args.mode == "steady":
                await steady(run, session, args.url, args.concurrency, args.seconds)
            elif args.mode == "bursts":
                await bursts(run, session, args.url, args.concurrency, args.bursts, args.period)
            else:
                await rate(run, session, args.url, args.rate, args.seconds)
        finally:
            stop.set()
            if scraping is not None:
                await scraping
        elapsed = time.perf_counter() - began
    return {"durations": run.durations, "requests": run.requests, "errors": run.errors,
            "seconds": elapsed, "scrape_ms": run.scrape_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--mode", choices=("steady", "bursts", "rate"), default="steady")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--scrape")
    parser.add_argument("--scrape-every", type=float, default=0.5)
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main_async(args))
    else:
        result = uvloop.run(main_async(args))
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out)
    else:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
