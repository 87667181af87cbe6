"""The Postgres prober: the machine's Postgres, a private cluster with password
authentication, a closed port, a frozen listener and a name that does not resolve."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe
from exporter.health.probes.postgres import classify
from tests.support.tools import free_port, postgres_bin, require_initdb

PG_BIN = postgres_bin()
PASSWORD = "right-pw-123"
PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def probe(url, limit=3.0):
    return await run_probe(ServiceConfig(name="pg", type="postgres", url=url), ProbeContext(timeout=limit))


def _as_postgres(*args: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def password_pg():
    """Port of a private cluster where role `prober` needs PASSWORD (scram-sha-256)."""
    require_initdb()
    root = Path(tempfile.mkdtemp(prefix="usdcop-pg-auth-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    try:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                     "--no-sync", "-E", "UTF8", "--locale=C")
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                     "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE ROLE prober LOGIN PASSWORD '{PASSWORD}'")
        yield port
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


async def test_machine_postgres():
    r = await probe(PG_ADMIN_DSN)
    assert (r.success, r.reason) == (True, None)
    assert r.extra["server_version"].count(".") == 1


async def test_fresh_database(pg_dsn):
    assert (await probe(pg_dsn)).success


async def test_password_accepted(password_pg):
    assert (await probe(f"postgresql://prober:{PASSWORD}@127.0.0.1:{password_pg}/postgres")).success


@pytest.mark.parametrize("userinfo", ["prober:wrong-pw-456", "prober"])
async def test_authentication_failure_is_other_and_secret_free(password_pg, userinfo):
    r = await probe(f"postgresql://{userinfo}@127.0.0.1:{password_pg}/postgres")
    assert (r.success, r.reason) == (False, "other")
    assert r.message.startswith("authentication failed")
    assert "wrong-pw-456" not in r.message and PASSWORD not in r.message


async def test_unknown_database():
    r = await probe(PG_ADMIN_DSN.rsplit("/", 1)[0] + "/usdcop_no_such_db")
    assert (r.reason, r.message) == ("other", 'database "usdcop_no_such_db" does not exist')


async def test_unknown_role_is_an_authentication_failure():
    r = await probe("postgresql://usdcop_no_such_role:pw-789@127.0.0.1:5432/postgres")
    assert r.reason == "other" and r.message.startswith("authentication failed")
    assert "pw-789" not in r.message


async def test_closed_port():
    port = free_port()
    r = await probe(f"postgresql://postgres:pw-000@127.0.0.1:{port}/postgres")
    assert r.reason == "connect" and f"port {port} failed: Connection refused" in r.message
    assert "pw-000" not in r.message


async def test_unresolvable_name():
    r = await probe("postgresql://postgres@no-such-host.invalid:5432/postgres")
    assert r.reason == "dns" and "no-such-host.invalid" in r.message


async def test_frozen_server_times_out(targets):
    host, port = targets.silent_tcp_address.split(":")
    r = await probe(f"postgresql://postgres@{host}:{port}/postgres", limit=0.3)
    assert r.reason == "timeout"


async def test_invalid_url():
    r = await probe("postgresql://x/y?bogus_option=1")
    assert (r.reason, r.message) == ("other", "invalid postgres URL")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('connection to server at "h", port 5432 failed: FATAL:  password authentication failed', "other"),
        ("failed to resolve host 'x': [Errno -2] Name or service not known", "dns"),
        ('could not translate host name "x" to address', "dns"),
        ("connection to server at \"h\", port 1 failed: timeout expired", "timeout"),
        ("connection to server at \"h\", port 1 failed: Connection refused", "connect"),
        ("server closed the connection unexpectedly", "connect"),
        ('FATAL:  database "x" does not exist', "other"),
    ],
)
def test_classify(message, reason):
    assert classify(message) == reason
