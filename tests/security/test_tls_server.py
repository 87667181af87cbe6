"""The sidecar's own TLS from the web configuration: served, rotated without a restart,
failing closed when the files go, client certificates verified and their SANs checked;
users, headers and the rate limit re-read while running."""

from __future__ import annotations

import asyncio
import os
import ssl

import aiohttp
import pytest

import exporter.security.web as web_module

from .conftest import HASH, PASSWORD, limit_count, running
from .test_basic_auth import basic


@pytest.fixture(autouse=True)
def fast_recheck(monkeypatch):
    """Look at the files every 50 ms instead of every second."""
    monkeypatch.setattr(web_module, "RECHECK_INTERVAL", 0.05)


def client_context(tls, client_file=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_file))
    if client_file is not None:
        ctx.load_cert_chain(str(client_file))
    return ctx


async def served_not_after(base: str, ctx: ssl.SSLContext) -> float:
    """notAfter of the certificate the server presents now."""
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    try:
        return ssl.cert_time_to_seconds(writer.get_extra_info("peercert")["notAfter"])
    finally:
        writer.close()


async def handshake_fails(base: str, ctx: ssl.SSLContext) -> bool:
    try:
        await served_not_after(base, ctx)
    except (ssl.SSLError, ConnectionError):
        return True
    return False


async def eventually(check, limit: float = 10.0):
    """Await `check()` until it is truthy (polled; the files are looked at every 50 ms)."""
    async with asyncio.timeout(limit):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.02)


def tls_web_config(tls, extra: str = "") -> str:
    return f"tls_server_config:\n  cert_file: {tls.cert_file}\n  key_file: {tls.key_file}\n{extra}"


async def test_serves_tls_and_rotates_the_certificate_without_restart(make_sidecar, tls_files):
    app = make_sidecar(web_config=tls_web_config(tls_files))
    ctx = client_context(tls_files)
    async with running(app) as base, aiohttp.ClientSession() as http:
        assert base.startswith("https://")
        async with http.get(base.replace("127.0.0.1", "localhost") + "/healthz", ssl=ctx) as resp:
            assert resp.status == 200
        first = await served_not_after(base, ctx)
        new_not_after = tls_files.issue(days=60)
        assert new_not_after != first
        served = await eventually(
            lambda: _if_equal(served_not_after(base, ctx), new_not_after))
        assert served == new_not_after
        # A plain-HTTP client gets nothing from a TLS port.
        with pytest.raises(aiohttp.ClientError):
            async with http.get(base.replace("https", "http") + "/healthz") as resp:
                await resp.read()


async def _if_equal(coro, expected):
    try:
        value = await coro
    except (ssl.SSLError, ConnectionError):
        return None  # still refusing handshakes
    return value if value == expected else None


async def test_unreadable_key_fails_closed_and_recovers(make_sidecar, tls_files):
    app = make_sidecar(web_config=tls_web_config(tls_files))
    ctx = client_context(tls_files)
    async with running(app) as base:
        assert not await handshake_fails(base, ctx)
        os.unlink(tls_files.key_file)
        await eventually(lambda: handshake_fails(base, ctx))
        fixed = tls_files.issue(days=45)
        assert await eventually(lambda: _if_equal(served_not_after(base, ctx), fixed)) == fixed


async def test_tls_settings_changed_while_running_fail_closed(make_sidecar, tls_files, tmp_path):
    app = make_sidecar(web_config=tls_web_config(tls_files))
    ctx = client_context(tls_files)
    async with running(app) as base:
        (tmp_path / "web.yml").write_text(tls_web_config(tls_files, "  min_version: TLS13\n"))
        await eventually(lambda: handshake_fails(base, ctx))
        (tmp_path / "web.yml").write_text(tls_web_config(tls_files))
        await eventually(lambda: _not(handshake_fails(base, ctx)))


async def _not(coro):
    return not await coro


async def test_client_certificates_verified_and_sans_checked(make_sidecar, tls_files):
    app = make_sidecar(web_config=tls_web_config(tls_files, (
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {tls_files.client_ca_file}\n"
        "  client_allowed_sans: [desk-client.example]\n")))
    url = None
    async with running(app) as base, aiohttp.ClientSession() as http:
        url = base.replace("127.0.0.1", "localhost") + "/healthz"
        async with http.get(url, ssl=client_context(tls_files, tls_files.client_file)) as resp:
            assert resp.status == 200
        async with http.get(url, ssl=client_context(tls_files, tls_files.other_client_file)) as resp:
            assert resp.status == 403
            assert (await resp.json())["detail"] == "client certificate not allowed"
        with pytest.raises(aiohttp.ClientError):  # no certificate: the handshake is refused
            async with http.get(url, ssl=client_context(tls_files)) as resp:
                await resp.read()


async def test_users_headers_and_failures_re_read_while_running(make_sidecar, tmp_path, registry):
    app = make_sidecar(web_config="http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    web_yml = tmp_path / "web.yml"
    async with running(app) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/nowhere") as resp:
            assert resp.status == 404 and resp.headers["X-Frame-Options"] == "deny"
        async with http.get(base + "/metrics") as resp:
            assert resp.status == 200

        web_yml.write_text(f"basic_auth_users:\n  prometheus: {HASH}\n")

        async def status(headers=None):
            async with http.get(base + "/metrics", headers=headers) as resp:
                return resp.status

        await eventually(lambda: _if_equal(status(), 401))
        assert await status({"Authorization": basic("prometheus", PASSWORD)}) == 200

        web_yml.write_text("basic_auth_users:\n  prometheus: not-a-hash\n")  # broken: fail closed
        await eventually(lambda: _if_equal(status({"Authorization": basic("prometheus", PASSWORD)}), 503))
        async with http.get(base + "/healthz") as resp:
            assert resp.status == 503
            assert (await resp.json())["error"] == "web_config_unavailable"
            assert "not-a-hash" not in await resp.text()

        web_yml.write_text("")  # no users: read routes open again
        await eventually(lambda: _if_equal(status(), 200))
    assert limit_count(registry, "rate") == 0
