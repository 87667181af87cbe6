"""rate_limit: a token bucket as the exporter-toolkit's; a test that really hits it."""

from __future__ import annotations

import aiohttp
import pytest

from exporter.security.ratelimit import TokenBucket
from tests.support.clock import FakeClock

from .conftest import limit_count, running


def test_bucket_starts_full_refills_and_caps():
    clock = FakeClock()
    bucket = TokenBucket(interval=2.0, burst=3, clock=clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == 2
    clock.now += 1.0
    assert not bucket.allow()
    assert bucket.retry_after() == 1
    clock.now += 1.0
    assert bucket.allow() and not bucket.allow()
    clock.now += 3600
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]  # never above burst


def test_clock_going_backwards_does_not_mint_tokens():
    clock = FakeClock()
    bucket = TokenBucket(interval=1.0, burst=1, clock=clock)
    assert bucket.allow()
    clock.now -= 100
    assert not bucket.allow()


def test_bad_arguments():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


async def test_the_rate_limit_is_hit_over_http(make_sidecar, registry):
    app = make_sidecar(web_config="rate_limit:\n  interval: 1h\n  burst: 3\n")
    async with running(app) as base, aiohttp.ClientSession() as http:
        codes = []
        for _ in range(5):
            async with http.get(base + "/metrics") as resp:
                codes.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body == {"error": "too_many_requests", "detail": "rate limit exceeded", "field": None}
                    assert 3000 < int(resp.headers["Retry-After"]) <= 3600
        assert codes == [200, 200, 200, 429, 429]
        async with http.get(base + "/healthz") as resp:
            assert resp.status == 200  # liveness is never rate limited
    assert limit_count(registry, "rate") == 2
    assert registry.get_sample_value("usdcop_http_requests_total",
                                     {"route": "/metrics", "method": "GET", "code": "429"}) == 2
