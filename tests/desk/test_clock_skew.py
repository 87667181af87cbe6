"""Clock skew from the HTTP Date header and the body's time, and the `during` label."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import formatdate

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from exporter.config import parse_config
from exporter.desk.clock_skew import body_time, estimate_skew, header_time
from exporter.exposition import render_now
from exporter.health.checker import HealthChecker
from exporter.health.collector import ServiceCollector
from exporter.health.registry import ServiceRegistry

DATE = "Mon, 03 Mar 2025 15:00:00 GMT"
T = datetime(2025, 3, 3, 15, 0, tzinfo=UTC).timestamp()


def test_header_and_body_times_are_read_strictly():
    assert header_time(DATE) == T
    for bad in (None, "", "yesterday", "Mon, 03 Mar 2025 15:00:00", "x" * 100):
        assert header_time(bad) is None, bad
    assert body_time({"time": "2025-03-03T15:00:00.250Z"}) == T + 0.25
    assert body_time({"last_check": "2025-03-03T10:00:00-05:00"}) == T
    assert body_time({"time": "2025-03-03T15:00:00"}) is None  # no offset: says nothing
    assert body_time({"time": 1741014000}) is None and body_time("text") is None


@pytest.mark.parametrize(("date", "body", "expected"), [
    (DATE, None, 0.5),  # Date alone: the middle of its second
    (DATE, T + 0.2, 0.2),  # a body time inside Date's second refines it
    (DATE, T - 600, 0.5),  # a body 10 minutes behind Date is a cached result: Date wins
    (DATE, T + 30, 30.0),  # ahead of Date: caching cannot explain it, the body wins
    (None, T - 3, -3.0),  # no Date: the body alone
    ("garbage", T - 3, -3.0),
    (None, None, None),
])
def test_estimate_prefers_a_body_time_only_when_it_is_credible(date, body, expected):
    assert estimate_skew(date, body, T - 0.05, T + 0.05) == expected


class Target:
    """A service whose clock the test sets: `offset` seconds off, body time `stale` behind."""

    def __init__(self, offset: float, stale: float = 0.0, field: str = "time") -> None:
        self.offset, self.stale, self.field = offset, stale, field

    async def handle(self, request: web.Request) -> web.Response:
        now = time.time() + self.offset
        stamp = datetime.fromtimestamp(now - self.stale, UTC).isoformat()
        return web.json_response({"status": "healthy", self.field: stamp},
                                 headers={"Date": formatdate(now, usegmt=True)})


async def test_probes_export_each_services_clock_skew_and_during(aiohttp_server, registry):
    targets = {"ahead": Target(30.0, stale=600.0, field="last_check"), "behind": Target(-5.25),
               "right": Target(0.0)}
    app = web.Application()
    for name, target in targets.items():
        app.router.add_get(f"/{name}", target.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    config = parse_config(f"""
services:
  - {{name: ahead, url: "{base}/ahead", during: session}}
  - {{name: behind, url: "{base}/behind"}}
  - {{name: right, url: "{base}/right"}}
""")
    checker = HealthChecker(ServiceRegistry(config))
    registry.register(ServiceCollector(checker))
    assert registry.get_sample_value("usdcop_service_clock_skew_seconds", {"service": "right"}) is None
    for name in targets:
        await checker.check_service(name)
    skew = {name: registry.get_sample_value("usdcop_service_clock_skew_seconds", {"service": name})
            for name in targets}
    # Date has whole seconds: ±0.5 s, plus the probe's own time on this shared machine.
    assert 29.0 < skew["ahead"] < 31.0  # a cached last_check 10 minutes old does not count
    assert -5.35 < skew["behind"] < -5.15  # the body's time refines Date
    assert abs(skew["right"]) < 0.5
    info = {name: registry.get_sample_value("usdcop_service_info",
                                            {"service": name, "type": "http", "critical": "true",
                                             "during": during})
            for name, during in (("ahead", "session"), ("behind", "always"), ("right", "always"))}
    assert info == {"ahead": 1.0, "behind": 1.0, "right": 1.0}
    # The fast /metrics rendering writes the same bytes as prometheus_client.
    fast = render_now(registry)[0]
    assert fast == generate_latest(registry)
    assert b'usdcop_service_info{critical="true",during="session",service="ahead",type="http"} 1.0' in fast
    assert b'usdcop_service_clock_skew_seconds{service="behind"} -5.2' in fast


async def test_without_during_the_info_series_keeps_its_labels(registry):
    checker = HealthChecker(ServiceRegistry(parse_config(
        "services:\n  - {name: api, url: 'http://127.0.0.1:1/h', labels: {team: desk}}\n")))
    registry.register(ServiceCollector(checker))
    assert registry.get_sample_value("usdcop_service_info",
                                     {"service": "api", "type": "http", "critical": "true",
                                      "team": "desk"}) == 1.0
