"""Targets that refuse, blackhole, reset, drip, crawl, bomb, loop or show bad certificates:
the sidecar answers each with a clear reason, never a 5xx, keeps serving, and recovers at
the next probe once the fault is gone."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.tools import free_port

from .conftest import running

pytestmark = pytest.mark.slow

OUTCOMES: dict[str, tuple] = {}  # case -> (reason, message) for the closing report


def _services(t, proxies: dict[str, FaultProxy], refused: int) -> str:
    p = {name: f"http://{proxy.address}" for name, proxy in proxies.items()}
    return f"""
defaults: {{timeout: 1s, degraded_latency: 150ms}}
services:
  - {{name: refused, url: "http://127.0.0.1:{refused}/healthy"}}
  - {{name: blackhole, url: "{p['blackhole']}/healthy"}}
  - {{name: reset, url: "{p['reset']}/healthy"}}
  - {{name: drip, url: "{p['drip']}/healthy"}}
  - {{name: crawl, url: "{p['crawl']}/huge?bytes=65536"}}
  - {{name: latency, url: "{p['latency']}/healthy", timeout: 3s}}
  - {{name: hang, url: "{t.url('/hang')}"}}
  - {{name: endless, url: "{t.url('/endless')}", max_body: 64KiB}}
  - {{name: gzip-bomb, url: "{t.url('/gzip-bomb?bytes=16777216')}"}}
  - {{name: redirect-loop, url: "{t.url('/redirect-loop')}", follow_redirects: true}}
  - {{name: expired-cert, url: "{t.expired_tls_url('/healthy')}", tls: {{ca_file: "{t.ca_file}"}}}}
  - {{name: wrong-host-cert, url: "{t.wrong_host_tls_url('/healthy')}", tls: {{ca_file: "{t.ca_file}"}}}}
  - {{name: untrusted-cert, url: "{t.tls_url('/healthy')}"}}
  - {{name: not-http, url: "http://{t.junk_tcp_address}/"}}
  - {{name: reset-mid-body, url: "{t.url('/reset-mid-body')}"}}
  - {{name: tcp-blackhole, type: tcp, address: "{proxies['tcp'].address}", degraded_latency: 1s}}
"""


EXPECTED = {
    "refused": ("unhealthy", "connect", "connection refused"),
    "blackhole": ("unhealthy", "timeout", "no answer within 1s"),
    "reset": ("unhealthy", "connect", "connection dropped"),
    "drip": ("unhealthy", "timeout", "no answer within 1s"),
    "crawl": ("unhealthy", "timeout", "no answer within 1s"),
    "latency": ("degraded", None, None),
    "hang": ("unhealthy", "timeout", "no answer within 1s"),
    "endless": ("unhealthy", "body_too_large", "larger than max_body"),
    "gzip-bomb": ("unhealthy", "body_too_large", "larger than max_body"),
    "redirect-loop": ("unhealthy", "status", "more than 10 redirects"),
    "expired-cert": ("unhealthy", "tls", "expired"),
    "wrong-host-cert": ("unhealthy", "tls", "mismatch"),
    "untrusted-cert": ("unhealthy", "tls", "certificate verify failed"),
    "not-http": ("unhealthy", "other", "invalid HTTP response"),
    "reset-mid-body": ("unhealthy", "connect", "connection dropped"),
    "tcp-blackhole": ("healthy", None, None),  # TCP only connects: a blackhole still accepts
}


async def test_every_fault_is_a_clear_reason_and_recovers(make_sidecar, targets, registry):
    upstream = ("127.0.0.1", targets.port)
    names = ("blackhole", "reset", "drip", "crawl", "latency", "tcp")
    proxies = {n: await FaultProxy(upstream).start() for n in names}
    try:
        proxies["blackhole"].blackhole = True
        proxies["tcp"].blackhole = True
        proxies["reset"].reset = True
        proxies["drip"].drip = 0.05
        proxies["crawl"].bandwidth = 2000
        proxies["latency"].latency = 0.4
        app = make_sidecar(_services(targets, proxies, free_port()))
        async with running(app) as base, aiohttp.ClientSession() as http:
            async def check(name):
                async with http.post(base + "/api/health/services", json={"service": name}) as resp:
                    assert resp.status == 200, (name, resp.status, await resp.text())
                    return name, await resp.json()

            results = dict(await asyncio.gather(*(check(n) for n in EXPECTED)))
            for name, (status, reason, words) in EXPECTED.items():
                health = results[name]
                probe = health["metadata"]["probe"]
                OUTCOMES[name] = (health["status"], probe.get("reason"), probe.get("message"))
                assert health["status"] == status, (name, health)
                assert probe.get("reason") == reason, (name, probe)
                if words:
                    assert words.lower() in probe["message"].lower(), (name, probe)
                    assert "http://" not in probe["message"] and "https://" not in probe["message"]

            async with http.get(base + "/metrics") as resp:
                text = await resp.text()
                assert resp.status == 200
            assert 'usdcop_service_probe_failures_total{reason="body_too_large",service="gzip-bomb"} 1.0' in text
            async with http.get(base + "/api/health/services") as resp:
                overview = await resp.json()
            assert overview["overall_status"] == "unhealthy"

            for proxy in proxies.values():  # the faults go away: the next probe is healthy
                proxy.clear()
            recovered = dict(await asyncio.gather(*(check(n) for n in ("blackhole", "reset", "drip", "crawl", "latency"))))
            assert {n: h["status"] for n, h in recovered.items()} == dict.fromkeys(recovered, "healthy")
        for code in ("500", "502", "503", "504"):
            assert not [s for s in registry.collect() for s in s.samples
                        if s.name == "usdcop_http_requests_total" and s.labels.get("code") == code]
    finally:
        for proxy in proxies.values():
            await proxy.close()
    print("\nfault outcomes:")
    for name, outcome in OUTCOMES.items():
        print(f"  {name:16} {outcome}")
