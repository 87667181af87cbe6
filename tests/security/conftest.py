"""A real sidecar behind its real listener (GuardedSite, TLS from a web config), and TLS files.

    async with running(app) as base: ...   # "http://127.0.0.1:PORT" or "https://..."
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import asynccontextmanager
from pathlib import Path

import bcrypt
import pytest
import trustme
from aiohttp import web

from exporter.api.limits import count_limit, make_site
from exporter.security.server import ConnectionGuard
from tests.support.apps import sidecar_app

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()  # cost 4: fast tests


class TLSFiles:
    """A CA, a server certificate and key on disk (rotatable), and a client certificate."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.ca_file = root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file = root / "server.crt"
        self.key_file = root / "server.key"
        self.issue(days=30)
        client_ca = trustme.CA()
        self.client_ca = client_ca
        self.client_ca_file = root / "client-ca.pem"
        client_ca.cert_pem.write_to_path(str(self.client_ca_file))
        self.client = client_ca.issue_cert("desk-client.example")
        self.client_file = root / "client.pem"
        self.client.private_key_and_cert_chain_pem.write_to_path(str(self.client_file))
        self.other_client = client_ca.issue_cert("intruder.example")
        self.other_client_file = root / "other-client.pem"
        self.other_client.private_key_and_cert_chain_pem.write_to_path(str(self.other_client_file))

    def issue(self, days: int) -> float:
        """Write a new server certificate valid `days` days, atomically; returns its notAfter."""
        not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)
        leaf = self.ca.issue_cert("127.0.0.1", "localhost", not_after=not_after)
        for target, pem in ((self.key_file, leaf.private_key_pem), (self.cert_file, leaf.cert_chain_pems[0])):
            tmp = target.with_suffix(".tmp")
            pem.write_to_path(str(tmp))
            os.replace(tmp, target)  # the way an operator (or cert-manager) should rotate
        return not_after.timestamp()


@pytest.fixture
def tls_files(tmp_path) -> TLSFiles:
    """TLS material of this test's own."""
    root = tmp_path / "tls"
    root.mkdir()
    return TLSFiles(root)


@pytest.fixture
def make_sidecar(tmp_path, registry):
    """Build the sidecar from services text, a web config text (or None) and environment."""

    def make(services: str = "services: []\n", web_config: str | None = None, **env: str):
        return sidecar_app(tmp_path, registry, services, web_config, **env)

    return make


@asynccontextmanager
async def running(app: web.Application, guard: ConnectionGuard | None = None):
    """Serve `app` on 127.0.0.1:0 with the sidecar's own listener; yields the base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    if guard is not None:
        guard.on_limit = lambda limit: count_limit(app, limit)
    site = make_site(runner, app, "127.0.0.1", 0, guard)
    await site.start()
    scheme = "https" if site._ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{site.port}"
    finally:
        await runner.cleanup()


def limit_count(registry, limit: str) -> float:
    """usdcop_limit_rejections_total{limit}."""
    return registry.get_sample_value("usdcop_limit_rejections_total", {"limit": limit}) or 0.0
