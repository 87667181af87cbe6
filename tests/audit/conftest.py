"""Audit fixtures: both stores behind one parametrised fixture, tampering helpers, clocks."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest

from exporter.audit.events import parse_event
from exporter.audit.store_pg import PgStore
from exporter.audit.store_sqlite import SqliteStore
from exporter.settings import Settings
from tests.support.clock import FakeClock
from tests.support.private_pg import PrivatePostgres


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(None)


def settings(tmp_path, **overrides) -> Settings:
    """Settings whose audit trail lives under `tmp_path` (SQLite unless postgres_url is given)."""
    values = dict(
        postgres_url=None, postgres_admin_url=None,
        audit_sqlite_path=str(tmp_path / "audit.sqlite3"),
        audit_spool_dir=str(tmp_path / "spool"), audit_spool_max_bytes=256 << 20,
        audit_retention=30 * 86400.0, audit_checkpoint_key=b"k" * 32,
        audit_checkpoint_dir=str(tmp_path / "checkpoints"), audit_checkpoint_events=1000,
        audit_checkpoint_seconds=300.0, audit_verify_interval=3600.0,
        audit_max_future_skew=300.0, service_name="app",
    )
    values.update(overrides)
    return Settings(**values)


def event(now: datetime | None = None, **fields):
    """A validated PendingEvent (defaults: SIGNAL_GENERATED for USDCOP)."""
    obj = {"event_type": "SIGNAL_GENERATED", "symbol": "USDCOP", "data": {"signal_id": "s1"}}
    obj.update(fields)
    return parse_event({k: v for k, v in obj.items() if v is not ...},
                       now=now or datetime.now(UTC))


class Tamper:
    """Changes a store behind its back, the way an attacker with the owner's rights would."""

    def __init__(self, store) -> None:
        self.store = store

    def _pg(self, statements: list[tuple[str, tuple]]) -> None:
        with psycopg.connect(self.store.admin_url, autocommit=False) as conn:
            conn.execute("SET session_replication_role = replica")  # triggers off (superuser)
            for text, args in statements:
                conn.execute(text.replace("{events}", "usdcop_audit.events")
                             .replace("{checkpoints}", "usdcop_audit.checkpoints"), args)
            conn.commit()

    def _sqlite(self, statements: list[tuple[str, tuple]]) -> None:
        db = sqlite3.connect(self.store.path)
        try:
            db.execute("BEGIN")
            triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger'").fetchall()
            for name, _ in triggers:
                db.execute(f"DROP TRIGGER {name}")
            for text, args in statements:
                db.execute(text.replace("{events}", "events").replace("{checkpoints}", "checkpoints")
                           .replace("%s", "?"), args)
            for _, text in triggers:
                db.execute(text)
            db.execute("COMMIT")
        finally:
            db.close()

    def run(self, *statements: tuple[str, tuple]) -> None:
        if self.store.kind == "postgres":
            self._pg(list(statements))
        else:
            self._sqlite(list(statements))

    def set_actor(self, sequence: int, actor: str) -> None:
        self.run(("UPDATE {events} SET actor = %s WHERE sequence = %s", (actor, sequence)))

    def delete(self, *sequences: int) -> None:
        for seq in sequences:
            self.run(("DELETE FROM {events} WHERE sequence = %s", (seq,)))

    def swap(self, a: int, b: int) -> None:
        self.run(("UPDATE {events} SET sequence = -1 WHERE sequence = %s", (a,)),
                 ("UPDATE {events} SET sequence = %s WHERE sequence = %s", (a, b)),
                 ("UPDATE {events} SET sequence = %s WHERE sequence = -1", (b,)))

    def cut_tail(self, after: int) -> None:
        """Delete every event after `after` and every database checkpoint beyond it."""
        statements = [("DELETE FROM {events} WHERE sequence > %s", (after,)),
                      ("DELETE FROM {checkpoints} WHERE sequence > %s", (after,))]
        if self.store.kind == "postgres":
            statements += [
                ("DELETE FROM usdcop_audit.event_ids WHERE sequence > %s", (after,)),
                ("UPDATE usdcop_audit.chain_head SET sequence = %s, hash = (SELECT hash FROM"
                 " usdcop_audit.events WHERE sequence = %s)", (after, after))]
        self.run(*statements)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request) -> str | None:
    """None for SQLite, else a fresh database (so it outlives the store using it)."""
    return request.getfixturevalue("pg_dsn") if request.param == "postgres" else None


@pytest.fixture
async def store(store_url, tmp_path, clock):
    """An opened, migrated store of each kind, on a settable clock."""
    if store_url is None:
        s = SqliteStore(tmp_path / "audit.sqlite3", clock=clock)
    else:
        s = PgStore(store_url, clock=clock)
    await s.open()
    await s.ensure_ready()
    yield s
    await s.close()


@pytest.fixture
def tamper(store) -> Tamper:
    return Tamper(store)


@pytest.fixture(scope="module")
def private_pg():
    """A private Postgres cluster for this test module (stopped and restarted by tests)."""
    cluster = PrivatePostgres()
    cluster.start()
    yield cluster
    cluster.destroy()
