"""Basic auth: bcrypt off the event loop, a bounded cache of successes, a dummy hash for
unknown users, and a password over 72 bytes answered 401, never 500."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import bcrypt

from exporter.security.basic_auth import BasicAuth

from .conftest import HASH, PASSWORD, running


def basic(user: str, password: str | bytes) -> str:
    raw = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


async def test_right_and_wrong_passwords():
    auth = BasicAuth({"prometheus": HASH.encode()})
    assert await auth.check(basic("prometheus", PASSWORD))
    assert not await auth.check(basic("prometheus", "wrong"))
    assert not await auth.check(basic("Prometheus", PASSWORD))


async def test_unknown_user_pays_a_bcrypt_run_like_a_known_one():
    auth = BasicAuth({"prometheus": HASH.encode()})
    assert not await auth.check(basic("nobody", PASSWORD))
    assert auth.bcrypt_runs == 1  # the dummy hash was checked: same work as a real user
    assert not await auth.check(basic("prometheus", "wrong"))
    assert auth.bcrypt_runs == 2


async def test_successes_are_cached_failures_are_not():
    auth = BasicAuth({"prometheus": HASH.encode()})
    for _ in range(5):
        assert await auth.check(basic("prometheus", PASSWORD))
    assert auth.bcrypt_runs == 1
    for _ in range(3):
        assert not await auth.check(basic("prometheus", "wrong"))
    assert auth.bcrypt_runs == 4


async def test_cache_is_bounded():
    users = {f"u{i}": bcrypt.hashpw(f"p{i}".encode(), bcrypt.gensalt(4)) for i in range(3)}
    auth = BasicAuth(users, cache_size=2)
    for i in range(3):
        assert await auth.check(basic(f"u{i}", f"p{i}"))
    assert len(auth._cache) == 2
    runs = auth.bcrypt_runs
    assert await auth.check(basic("u0", "p0"))  # evicted first, so bcrypt again
    assert auth.bcrypt_runs == runs + 1


async def test_a_changed_hash_is_not_served_from_the_cache():
    first = BasicAuth({"prometheus": HASH.encode()})
    assert await first.check(basic("prometheus", PASSWORD))
    other = bcrypt.hashpw(b"new password", bcrypt.gensalt(4))
    second = BasicAuth({"prometheus": other})
    assert not await second.check(basic("prometheus", PASSWORD))


async def test_long_passwords_and_garbage_are_refused_not_raised():
    auth = BasicAuth({"prometheus": HASH.encode()})
    long = PASSWORD.encode() + b"x" * 80
    for header in (basic("prometheus", long), basic("prometheus", b"\xff" * 73), "Basic !!!",
                   "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc", "", None,
                   "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(), "Basic"):
        assert not await auth.check(header)


async def test_htpasswd_2y_hashes_work():
    y_hash = HASH.replace("$2b$", "$2y$", 1).encode()
    assert await BasicAuth({"a": y_hash}).check(basic("a", PASSWORD))


async def test_bcrypt_runs_off_the_event_loop():
    slow = bcrypt.hashpw(b"pw", bcrypt.gensalt(12))  # a few hundred ms of hashing
    auth = BasicAuth({"a": slow})
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    assert await auth.check(basic("a", "pw"))
    done.set()
    await task
    # On the loop, the check would have finished before the ticker ran even once.
    assert ticks > 10


async def test_http_read_routes_need_a_user_and_long_password_is_401(make_sidecar, registry):
    app = make_sidecar(web_config=f"basic_auth_users:\n  prometheus: {HASH}\n",
                       EXPORTER_API_TOKEN="api-token-123")
    async with running(app) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/metrics") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic ")
        async with http.get(base + "/metrics", headers={"Authorization": basic("prometheus", PASSWORD)}) as resp:
            assert resp.status == 200
        async with http.get(base + "/metrics", headers={"Authorization": "Bearer api-token-123"}) as resp:
            assert resp.status == 200
        long = basic("prometheus", "p" * 100)
        async with http.get(base + "/api/health/services", headers={"Authorization": long}) as resp:
            assert resp.status == 401
            body = await resp.json()
            assert body["error"] == "unauthorized"
        async with http.get(base + "/healthz") as resp:
            assert resp.status == 200  # public stays public
        # a basic-auth user does not pass write routes when a token is configured
        async with http.post(base + "/-/reload", headers={"Authorization": basic("prometheus", PASSWORD)}) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert registry.get_sample_value("usdcop_http_requests_total",
                                     {"route": "/api/health/services", "method": "GET", "code": "500"}) is None
