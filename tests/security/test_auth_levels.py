"""Auth levels (docs/api.md) on every route of the route table (all features): who
passes, 401 with the right WWW-Authenticate when credentials are missing or wrong, 403 when
they are right but not enough; the table matches the router; *_FILE secrets work."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from exporter.api.keys import ROUTE_INDEX

from .conftest import HASH, PASSWORD, running

API, ADMIN = "api-token-for-tests", "admin-token-for-tests"
BASIC = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
SERVICES = "services:\n  - {name: self, type: tcp, address: '127.0.0.1:1'}\n"


def _denied(status: int) -> bool:
    return status in (401, 403)


@pytest.fixture
async def sidecar(make_sidecar, tmp_path):
    admin_file = tmp_path / "admin.token"
    admin_file.write_text(ADMIN + "\n")
    app = make_sidecar(SERVICES, web_config=f"basic_auth_users:\n  prometheus: {HASH}\n",
                       EXPORTER_API_TOKEN=API, EXPORTER_ADMIN_TOKEN_FILE=str(admin_file))
    async with running(app) as base, aiohttp.ClientSession() as http:
        yield app, base, http


async def _status(http, base, method, path, auth=None):
    headers = {"Authorization": auth} if auth else {}
    body = None if method == "GET" else b"{}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    async with http.request(method, base + path, headers=headers, data=body) as resp:
        await resp.read()
        return resp.status, resp.headers.get("WWW-Authenticate", "")


async def test_every_route_enforces_its_level(sidecar):
    app, base, http = sidecar
    routes = app[ROUTE_INDEX]
    assert {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.method != "HEAD"} == set(routes)
    levels = {route.level for route in routes.values()}
    assert levels == {"public", "read", "write", "admin"}
    # admin routes last: a purge must not run before the write routes are checked
    for (method, path), route in sorted(routes.items(), key=lambda kv: kv[1].level == "admin"):
        where = f"{method} {path} ({route.level})"
        none, challenge = await _status(http, base, method, path)
        wrong, wrong_challenge = await _status(http, base, method, path, "Bearer not-a-token")
        basic = (await _status(http, base, method, path, BASIC))[0]
        api = (await _status(http, base, method, path, f"Bearer {API}"))[0]
        if route.level == "public":
            assert not _denied(none) and not _denied(wrong), where
            continue
        assert none == 401 and wrong == 401, where
        assert wrong_challenge.startswith("Basic ") or wrong_challenge.startswith("Bearer "), where
        if route.level == "read":
            assert challenge.startswith("Basic realm="), where
            assert not _denied(basic) and not _denied(api), where
        elif route.level == "write":
            assert challenge.startswith("Bearer realm="), where
            assert basic == 401, where  # a token is configured: basic users read only
            assert not _denied(api), where
        else:
            assert challenge.startswith("Bearer realm=") and basic == 401 and api == 403, where
        admin = (await _status(http, base, method, path, f"Bearer {ADMIN}"))[0]
        assert not _denied(admin), where  # the admin token passes every level


async def test_nothing_configured_opens_read_and_write_but_never_admin(make_sidecar):
    app = make_sidecar(SERVICES)
    async with running(app) as base, aiohttp.ClientSession() as http:
        for (method, path), route in app[ROUTE_INDEX].items():
            status, _ = await _status(http, base, method, path)
            if route.level == "admin":
                assert status == 403, (method, path)
            else:
                assert not _denied(status), (method, path, status)
        async with http.delete(base + "/api/audit/signals") as resp:
            assert (await resp.json())["detail"] == "no admin token configured"


async def test_api_token_from_a_file(make_sidecar, tmp_path):
    token_file = tmp_path / "api.token"
    token_file.write_text(API + "\n")
    app = make_sidecar(SERVICES, EXPORTER_API_TOKEN_FILE=str(token_file))
    async with running(app) as base, aiohttp.ClientSession() as http:
        assert (await _status(http, base, "POST", "/-/reload"))[0] == 401
        assert (await _status(http, base, "POST", "/-/reload", f"Bearer {API}"))[0] == 200
        assert (await _status(http, base, "POST", "/-/reload", f"bearer  {API} "))[0] == 200
        assert (await _status(http, base, "POST", "/-/reload", f"Bearer {API}x"))[0] == 401
