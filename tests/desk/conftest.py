"""Desk fixtures: a settable clock, a Redis client in the test's namespace, a real audit
logger on SQLite or the machine's Postgres, and a real sidecar (create_app)."""

from __future__ import annotations

import pytest

from exporter.app import create_app
from exporter.audit.logger import AuditLogger
from exporter.cache.client import RedisClient
from exporter.settings import Settings, load_settings

WRITER = {"Authorization": "Bearer writer-token-0123456789"}


@pytest.fixture
async def redis_client(redis_url, redis_namespace):
    """A RedisClient on the machine's Redis (db 11) in this test's namespace."""
    client = RedisClient(namespace=redis_namespace, url=redis_url)
    yield client
    await client.close()


def audit_settings(tmp_path, postgres_url: str | None = None) -> Settings:
    """Settings whose audit trail lives under `tmp_path`, SQLite unless postgres_url is given."""
    return Settings(
        postgres_url=postgres_url, postgres_admin_url=None,
        audit_sqlite_path=str(tmp_path / "audit.sqlite3"),
        audit_spool_dir=str(tmp_path / "spool"), audit_spool_max_bytes=256 << 20,
        audit_retention=30 * 86400.0, audit_max_future_skew=300.0,
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def audit_logger(request, tmp_path):
    """A started AuditLogger on SQLite, then on a fresh Postgres database."""
    url = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    logger = AuditLogger.from_settings(audit_settings(tmp_path, url))
    await logger.start()
    logger.kind = request.param
    yield logger
    await logger.close()


@pytest.fixture
def sidecar_env(tmp_path, redis_url, redis_namespace):
    """Environment for a real sidecar on the test's Redis namespace, scheduler off."""

    def make(services: str, **extra: str) -> dict[str, str]:
        path = tmp_path / "services.yaml"
        path.write_text(services)
        return {"EXPORTER_CONFIG": str(path), "EXPORTER_SCHEDULER": "off",
                "EXPORTER_API_TOKEN": WRITER["Authorization"].split()[1],
                "REDIS_URL": redis_url, "REDIS_NAMESPACE": redis_namespace,
                "MIRROR_INTERVAL": "100ms",
                "AUDIT_SQLITE_PATH": str(tmp_path / "audit.sqlite3"),
                "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
                "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"), **extra}

    return make


@pytest.fixture
def sidecar(aiohttp_client, registry, sidecar_env):
    """A test client on create_app for a services text (writer token as default header)."""

    async def start(services: str = "services: []\n", **extra: str):
        app = create_app(load_settings(sidecar_env(services, **extra)), registry)
        return await aiohttp_client(app, headers=WRITER)

    return start
