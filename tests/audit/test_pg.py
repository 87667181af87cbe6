"""Postgres-only parts: migrations racing, roles, partitions, several writers on one chain."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from exporter.audit import pg_schema
from exporter.audit.events import parse_event
from exporter.audit.spool import Spool
from exporter.audit.store_pg import PgStore
from exporter.audit.verify import verify_store
from exporter.audit.writer import AuditWriter


def ev(**fields):
    return parse_event({"event_type": "TRADE_EXECUTED", **fields}, now=datetime.now(UTC))


async def test_two_processes_migrating_at_once_apply_each_version_once(pg_dsn):
    conns = [await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) for _ in range(3)]
    try:
        versions = await asyncio.gather(*(pg_schema.migrate(c) for c in conns))
        assert versions == [pg_schema.LATEST] * 3
        cur = await conns[0].execute("SELECT version FROM usdcop_audit.migrations")
        assert [r[0] for r in await cur.fetchall()] == [pg_schema.LATEST]
        assert await pg_schema.migrate(conns[0]) == pg_schema.LATEST  # idempotent
    finally:
        for c in conns:
            await c.close()


async def test_two_sidecars_on_one_database_keep_one_valid_chain(pg_dsn, tmp_path):
    writers = []
    for name in ("a", "b"):
        w = AuditWriter(PgStore(pg_dsn), Spool(tmp_path / name))
        await w.start()
        writers.append(w)
    try:
        results = await asyncio.gather(*(
            writers[i % 2].submit([ev(data={"i": i})]) for i in range(300)))
        batches = await asyncio.gather(*(
            writers[i % 2].submit([ev(data={"b": i, "k": k}) for k in range(10)])
            for i in range(20)))
        assert all(r[0][0] == "stored" for r in results)
        seqs = sorted(r[0][1]["sequence"] for r in results) + sorted(
            e["sequence"] for b in batches for _, e in b)
        assert sorted(seqs) == list(range(1, 501))
        result = await verify_store(writers[0].store, None)
        assert result["ok"] and result["checked"] == 500
    finally:
        for w in writers:
            await w.close()


async def test_partitions_ahead_and_their_truncate_guard(pg_dsn):
    store = PgStore(pg_dsn)
    await store.open()
    await store.ensure_ready()
    try:
        later = datetime.now(UTC) + timedelta(days=200)
        report = await store.maintain(now=later)
        month = pg_schema.month_start(later)
        assert pg_schema.partition_name(month) in report["created"]
        assert report["default_partition_rows"] == 0
        with psycopg.connect(pg_dsn) as conn:
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(f"TRUNCATE usdcop_audit.{pg_schema.partition_name(month)}")
    finally:
        await store.close()


async def test_rows_outside_every_partition_land_in_default_and_are_counted(pg_dsn):
    far = datetime.now(UTC) + timedelta(days=3650)
    store = PgStore(pg_dsn, clock=lambda: far)
    await store.open()
    await store.ensure_ready()
    try:
        await store.append([[ev()]])
        report = await store.maintain()
        assert report["default_partition_rows"] == 1
        assert (await verify_store(store, None))["ok"]
    finally:
        await store.close()


@pytest.fixture
def role_db(private_pg):
    """A database on the private cluster with an owner and a least-privilege writer role."""
    if not private_pg.running():
        private_pg.start()
    name = "roles_" + uuid.uuid4().hex[:8]
    writer = "writer_" + uuid.uuid4().hex[:8]
    with psycopg.connect(private_pg.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{writer}" LOGIN')
        conn.execute(f'CREATE DATABASE "{name}"')
    return private_pg.dsn(name), private_pg.dsn(name, writer), writer


async def test_least_privilege_writer_role(role_db):
    owner_url, writer_url, writer = role_db
    owner = PgStore(owner_url)
    await owner.open()
    await owner.ensure_ready()  # the owner migrates
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for statement in pg_schema.writer_grants(writer):
            conn.execute(statement)
    await owner.close()
    store = PgStore(writer_url, admin_url=owner_url)
    await store.open()
    await store.ensure_ready()
    try:
        [[(outcome, stored)]] = await store.append([[ev()]])
        assert outcome == "stored"
        part = pg_schema.partition_name(pg_schema.month_start(datetime.now(UTC)))
        with psycopg.connect(writer_url, autocommit=True) as conn:
            for text in ("UPDATE usdcop_audit.events SET actor = 'x'",
                         "DELETE FROM usdcop_audit.events",
                         "TRUNCATE usdcop_audit.events",
                         f"TRUNCATE usdcop_audit.{part}",
                         f"DROP TABLE usdcop_audit.{part}",
                         "DELETE FROM usdcop_audit.event_ids",
                         "ALTER TABLE usdcop_audit.events DISABLE TRIGGER USER"):
                with pytest.raises(psycopg.Error, match="permission denied|must be owner"):
                    conn.execute(text)
        assert (await store.head())[0] == 1
        assert (await verify_store(store, None))["ok"]
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA usdcop_audit")
        conn.execute("CREATE TABLE usdcop_audit.migrations (version int PRIMARY KEY,"
                     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO usdcop_audit.migrations VALUES (99, 'future')")
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        with pytest.raises(RuntimeError, match="version 99, newer than this program"):
            await pg_schema.migrate(conn)


async def test_both_plans_for_time_windows_give_the_same_answers(pg_dsn, monkeypatch):
    from exporter.audit import store_pg_reads
    from exporter.audit.query import Query

    store = PgStore(pg_dsn)
    await store.open()
    await store.ensure_ready()
    try:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        now = datetime.now(UTC)
        units = [[parse_event({"event_type": "TRADE_EXECUTED" if i % 3 else "POSITION_OPENED",
                               "symbol": "USDCOP" if i % 2 else "EURUSD",
                               "timestamp": (base + timedelta(minutes=(i * 7) % 60)).isoformat()},
                              now=now)] for i in range(60)]
        await store.append(units)
        queries = [Query(start=base + timedelta(minutes=10), end=base + timedelta(minutes=30),
                         limit=7),
                   Query(start=base + timedelta(minutes=20), event_type="POSITION_OPENED", limit=50),
                   Query(end=base + timedelta(minutes=5), symbol="EURUSD", before=40, limit=3)]
        sorted_plan = [await store.query(q) for q in queries]
        monkeypatch.setattr(store_pg_reads, "WINDOW_SORT_MAX", -1)
        natural_plan = [await store.query(q) for q in queries]
        assert sorted_plan == natural_plan
        assert all(rows for rows in sorted_plan)
    finally:
        await store.close()
