"""The Redis prober: the machine's Redis (PING and INFO only), a private one with a
password, a closed port, a frozen listener and a name that does not resolve."""

import subprocess
import time

import pytest
import redis

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe
from tests.support.tools import free_port, require_tool

PASSWORD = "s3cret-pw"


async def probe(url, limit=2.0):
    return await run_probe(ServiceConfig(name="redis", type="redis", url=url), ProbeContext(timeout=limit))


@pytest.fixture(scope="module")
def private_redis():
    """A redis-server of this module's own, requiring PASSWORD."""
    server = require_tool("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, password=PASSWORD, socket_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    client.close()
    yield port
    proc.terminate()
    proc.wait(timeout=10)


async def test_machine_redis(redis_url):
    r = await probe(redis_url)
    assert (r.success, r.reason) == (True, None)
    assert r.extra["redis_version"].count(".") >= 1
    assert r.details["uptime"] >= 0


async def test_password_accepted(private_redis):
    r = await probe(f"redis://:{PASSWORD}@127.0.0.1:{private_redis}/0")
    assert r.success


@pytest.mark.parametrize("userinfo", [":wrong-pw@", "", "someone:wrong-pw@"])
async def test_authentication_failure_is_other_and_secret_free(private_redis, userinfo):
    r = await probe(f"redis://{userinfo}127.0.0.1:{private_redis}/0")
    assert (r.success, r.reason) == (False, "other")
    assert r.message == f"127.0.0.1:{private_redis}: authentication failed"


async def test_closed_port():
    port = free_port()
    r = await probe(f"redis://127.0.0.1:{port}/0")
    assert (r.reason, r.message) == ("connect", f"127.0.0.1:{port}: cannot connect")


async def test_unresolvable_name():
    r = await probe("redis://:pw@no-such-host.invalid:6379/0")
    assert (r.reason, r.message) == ("dns", "no-such-host.invalid:6379: cannot resolve host")


async def test_frozen_server_times_out(targets):
    r = await probe(f"redis://{targets.silent_tcp_address}/0", limit=0.3)
    assert r.reason == "timeout"


async def test_invalid_url():
    r = await probe("http://not-redis/")
    assert (r.reason, r.message) == ("other", "invalid redis URL")
