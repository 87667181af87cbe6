"""Basic auth under a flood of wrong passwords: the bcrypt queue is bounded overall and per
client address (excess attempts get 429 before any bcrypt work), so a valid user's first
scrape does not wait behind the flood; and failed attempts never drain the rate-limit
bucket that authenticated clients use."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.security.basic_auth import AuthBusy, BasicAuth
from tests.support.sidecars import Sidecar, clean_env

from .conftest import limit_count, running
from .test_basic_auth import basic

PASSWORD = "scrape-password"
COST = 8  # a few ms per check: slow enough that 250 clients queue up behind two threads
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(COST)).decode()
ATTACKERS = ("127.0.0.2", "127.0.0.3")  # two addresses, each within its connection share
SCRAPER = "127.0.0.1"
FLOOD = 250
ROOT = Path(__file__).resolve().parents[2]


async def test_the_queue_is_bounded_per_client_and_overall():
    auth = BasicAuth({"prometheus": HASH.encode()}, workers=1, queue=3, per_client=2)
    wrong = basic("prometheus", "wrong")
    first = [asyncio.create_task(auth.check(wrong, "10.0.0.1")) for _ in range(2)]
    await asyncio.sleep(0)
    assert auth.queued == 2
    with pytest.raises(AuthBusy):
        await auth.check(wrong, "10.0.0.1")  # its own share is used up
    other = asyncio.create_task(auth.check(basic("prometheus", PASSWORD), "10.0.0.2"))
    await asyncio.sleep(0)
    with pytest.raises(AuthBusy):
        await auth.check(wrong, "10.0.0.3")  # the whole queue is full
    assert auth.shed == 2
    assert await other and not any(await asyncio.gather(*first))
    assert auth.queued == 0 and auth._queued_by == {}
    assert auth.bcrypt_runs == 3  # the refused checks cost no bcrypt
    assert await auth.check(basic("prometheus", PASSWORD), "10.0.0.1")  # served from the cache


@pytest.mark.slow
async def test_a_flood_of_wrong_passwords_does_not_starve_a_valid_scrape(tmp_path):
    cfg, web = tmp_path / "services.yaml", tmp_path / "web.yml"
    cfg.write_text("services: []\n")
    web.write_text(f"basic_auth_users:\n  prometheus: {HASH}\n")
    sidecar = Sidecar(["--config", str(cfg), "--web-config", str(web)], clean_env(tmp_path)).wait_ready()
    flood = subprocess.Popen([sys.executable, "-m", "tests.support.auth_flood", sidecar.base + "/metrics",
                              "prometheus", str(FLOOD), *ATTACKERS], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert await asyncio.to_thread(flood.stdout.readline) == "ready\n"  # at full strength
        connector = aiohttp.TCPConnector(local_addr=(SCRAPER, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            started = time.monotonic()
            async with http.get(sidecar.base + "/metrics",
                                headers={"Authorization": basic("prometheus", PASSWORD)},
                                timeout=aiohttp.ClientTimeout(total=30)) as resp:
                status = resp.status
                text = await resp.text()
            took = time.monotonic() - started
        scraped = await asyncio.to_thread(sidecar.get, "/healthz")
    finally:
        out, _ = await asyncio.to_thread(flood.communicate, "", 60)
        code = sidecar.stop()
    codes = {int(k): v for k, v in json.loads(out.splitlines()[-1]).items()}
    assert status == 200 and "usdcop_build_info" in text
    assert took < 8.0  # a functional bound: Prometheus gives up after 10 s
    assert codes.get(429, 0) >= FLOOD and codes.get(401, 0) >= 1  # the excess was shed
    assert set(codes) <= {401, 429}
    assert 'usdcop_limit_rejections_total{limit="auth"}' in text
    auth_shed = float(text.split('usdcop_limit_rejections_total{limit="auth"} ')[1].split()[0])
    assert auth_shed >= FLOOD  # the 429s were the password-check queue's, not another limit's
    assert scraped[0] == 200 and code == 0


async def test_failed_attempts_do_not_drain_the_rate_limit(make_sidecar, registry):
    app = make_sidecar(web_config=f"basic_auth_users:\n  prometheus: {HASH}\n"
                                  "rate_limit:\n  interval: 1h\n  burst: 3\n")
    async with running(app) as base, aiohttp.ClientSession() as http:
        for i in range(10):  # none of these passes authentication
            headers = {"Authorization": basic("prometheus", f"wrong-{i}")} if i % 2 else {}
            async with http.get(base + "/metrics", headers=headers) as resp:
                assert resp.status == 401
        codes = []
        for _ in range(4):
            async with http.get(base + "/metrics",
                                headers={"Authorization": basic("prometheus", PASSWORD)}) as resp:
                codes.append(resp.status)
        assert codes == [200, 200, 200, 429]  # the whole burst was still there for the scraper
        async with http.get(base + "/healthz") as resp:
            assert resp.status == 200  # public routes stay exempt
    assert limit_count(registry, "rate") == 1
