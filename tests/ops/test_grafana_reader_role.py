"""deploy/compose/postgres-init/10-grafana-reader.sh on a real Postgres: the role Grafana
reads the audit trail with can SELECT every table the sidecar creates, even later ones,
and can change nothing."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from exporter.audit import pg_schema
from exporter.audit.store_pg import PgStore
from tests.ops import artefacts as a
from tests.support.tools import require_tool

SCRIPT = a.REPO / "deploy/compose/postgres-init/10-grafana-reader.sh"


@pytest.fixture
def reader(pg_dsn):
    """Run the init script on the test database; yields (reader's DSN, role); drops the role."""
    require_tool("psql")
    role = f"usdcop_grafana_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(pg_dsn)
    env = {**os.environ, "POSTGRES_USER": parts.username or "postgres",
           "POSTGRES_DB": parts.path.lstrip("/"), "PGHOST": parts.hostname or "127.0.0.1",
           "PGPORT": str(parts.port or 5432), "GRAFANA_AUDIT_DB_USER": role,
           "GRAFANA_AUDIT_DB_PASSWORD": "reader-test-password"}
    res = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        netloc = f"{role}@{parts.hostname}:{parts.port or 5432}"
        yield urlunsplit(parts._replace(netloc=netloc)), role
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f'DROP OWNED BY "{role}"')
                conn.execute(f'DROP ROLE "{role}"')


async def test_the_reader_selects_and_changes_nothing(pg_dsn, reader):
    reader_dsn, role = reader
    store = PgStore(pg_dsn)  # the sidecar migrates as the owner, after the init script ran
    await store.open()
    try:
        await store.ensure_ready()
        later = datetime.now(UTC) + timedelta(days=100)
        created = (await store.maintain(now=later))["created"]
        assert created
    finally:
        await store.close()
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        for table in ("events", "event_ids", "chain_head", "checkpoints", "migrations",
                      created[-1]):
            conn.execute(f"SELECT count(*) FROM usdcop_audit.{table}").fetchone()
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        conn.execute("SET default_transaction_read_only = off")  # privileges still refuse
        for statement in (
            "INSERT INTO usdcop_audit.chain_head SELECT * FROM usdcop_audit.chain_head",
            "UPDATE usdcop_audit.chain_head SET sequence = sequence",
            "DELETE FROM usdcop_audit.migrations",
            "CREATE TABLE usdcop_audit.x (i int)",
            "CREATE TABLE public.x (i int)",
            f"TRUNCATE usdcop_audit.{pg_schema.partition_name(pg_schema.month_start(later))}",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
