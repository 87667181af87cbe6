"""A real Prometheus scraping a sidecar, with gzip as it asks: what it stores is the sidecar's
exposition, sample for sample, also when large unchanged pieces are written from the
scrape before in the compressed form they had then."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.api.keys import GZIP_SEGMENTS
from exporter.exposition import CACHE_MIN
from tests.support.apps import sidecar_app
from tests.support.tools import free_port, ready_server, require_tool

pytestmark = pytest.mark.slow

SERVICES = 600  # enough for pieces (a family's lines for 256 services) over CACHE_MIN


async def _query(session: aiohttp.ClientSession, base: str, expr: str) -> list[dict]:
    async with session.get(base + "/api/v1/query", params={"query": expr}) as resp:
        body = await resp.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


async def test_prometheus_stores_every_sample_of_gzip_scrapes_with_cached_segments(tmp_path):
    binary = require_tool("prometheus")
    services = "services:\n" + "".join(
        f"  - name: svc-{i:04d}\n    type: tcp\n    address: 127.0.0.1:9\n    critical: {str(i % 2 == 0).lower()}\n"
        for i in range(SERVICES))
    app = sidecar_app(tmp_path, CollectorRegistry(), services)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [{"job_name": "sidecar",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }))
    prom_port = free_port()
    args = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{prom_port}",
            f"--storage.tsdb.path={tmp_path / 'data'}"]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics",
                                   headers={"Accept-Encoding": "identity"}) as resp:
                plain = await resp.text()
            assert max(len(line) for line in plain.splitlines()) < CACHE_MIN
            with ready_server(args, prom_port, tmp_path / "prometheus.log") as base:
                hits = 0
                for _ in range(120):  # until three scrapes went out with cached segments
                    await asyncio.sleep(0.5)
                    hits = app[GZIP_SEGMENTS].hits
                    if hits >= 3 * (SERVICES // 256):
                        break
                assert hits >= 3 * (SERVICES // 256), "no large piece was written from the cache"
                await asyncio.sleep(1.5)  # the newest scrape stored
                up = await _query(session, base, 'up{job="sidecar"}')
                assert [r["value"][1] for r in up] == ["1"]
                info = await _query(session, base, "count(usdcop_service_info)")
                assert info[0]["value"][1] == str(SERVICES)
                critical = await _query(session, base, 'count(usdcop_service_info{critical="true"})')
                assert critical[0]["value"][1] == str(SERVICES // 2)
                # every sample of the text is one Prometheus stored in the last scrape
                samples = await _query(session, base, 'scrape_samples_scraped{job="sidecar"}')
                expected = sum(1 for line in plain.splitlines()
                               if line and not line.startswith("#"))
                stored = int(samples[0]["value"][1])
                # process and HTTP metrics may gain series between the two scrapes
                assert abs(stored - expected) <= 50, (stored, expected)
                status = await _query(session, base,
                                      'count(usdcop_service_status{status="unknown"} == 1)')
                assert status[0]["value"][1] == str(SERVICES)
    finally:
        await runner.cleanup()

