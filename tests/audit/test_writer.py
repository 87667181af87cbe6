"""The write path under faults: Postgres stopped, frozen, restarted; replays; dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime

import pytest

from exporter.audit.errors import AuditConflict, AuditUnavailable
from exporter.audit.events import parse_event
from exporter.audit.metrics import AuditMetrics, AuditState
from exporter.audit.spool import Spool
from exporter.audit.store_pg import PgStore
from exporter.audit.store_sqlite import SqliteStore
from exporter.audit.verify import verify_store
from exporter.audit.writer import AuditWriter


def ev(**fields):
    obj = {"event_type": "TRADE_EXECUTED", "symbol": "USDCOP"}
    obj.update(fields)
    return parse_event(obj, now=datetime.now(UTC))


async def until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `predicate` until true or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def pg_db(private_pg):
    """A fresh database on the module's private cluster (started if a test stopped it)."""
    if not private_pg.running():
        private_pg.start()
    return private_pg.create_database("audit_" + uuid.uuid4().hex[:10])


@pytest.fixture
async def writer(pg_db, tmp_path, registry):
    store = PgStore(pg_db, timeout=1.0)
    spool = Spool(tmp_path / "spool")
    metrics = AuditMetrics(registry, AuditState(spool=spool))
    w = AuditWriter(store, spool, metrics, retry_min=0.05, retry_max=0.3)
    await w.start()
    yield w
    await w.close(flush_timeout=1.0)


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


async def test_outage_spools_then_drains_in_order_exactly_once(writer, private_pg, registry):
    stored_id = str(uuid.uuid4())
    [(outcome, first)] = await writer.submit([ev(event_id=stored_id, data={"n": 0})])
    assert outcome == "stored" and first["sequence"] == 1
    private_pg.stop()
    sent = [ev(data={"n": i}) for i in range(1, 30)]
    answers = await asyncio.gather(*(writer.submit([e]) for e in sent))
    assert {a[0][0] for a in answers} == {"spooled"}
    assert all(a[0][1]["sequence"] is None and a[0][1]["hash"] is None for a in answers)
    # Retried while away: the duplicate and the conflict are only resolved at drain.
    [(dup, _)] = await writer.submit([ev(event_id=stored_id, data={"n": 0})])
    [(clash, _)] = await writer.submit([ev(event_id=stored_id, data={"n": "changed"})])
    assert dup == clash == "spooled"
    assert writer.spool.pending == 31
    assert sample(registry, "usdcop_postgres_up") == 0
    assert sample(registry, "usdcop_audit_write_failures_total", reason="connection") >= 1
    private_pg.start()
    await until(lambda: writer.spool.empty and writer.store_up, what="the spool to drain")
    store = writer.store
    events = [e async for e in store.iter_events()]
    assert [e["data"]["n"] for e in events] == list(range(30))  # acceptance order
    assert len({e["event_id"] for e in events}) == 30
    dead = [json.loads(line) for line in
            (writer.spool.dir / "dead-letter.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["event"]["data"] == {"n": "changed"}
    assert "different fields" in dead[0]["reason"]
    assert sample(registry, "usdcop_audit_dead_letter_total") == 1
    assert sample(registry, "usdcop_audit_events_total", event_type="TRADE_EXECUTED",
                  outcome="spooled") == 31
    assert sample(registry, "usdcop_audit_events_total", event_type="TRADE_EXECUTED",
                  outcome="duplicate") == 1
    assert sample(registry, "usdcop_postgres_up") == 1
    assert (await verify_store(store, None))["ok"]
    # Back to direct writes once drained.
    [(outcome, last)] = await writer.submit([ev(data={"n": 30})])
    assert outcome == "stored" and last["sequence"] == 31


async def test_replayed_spool_records_are_not_stored_twice(writer):
    events = [ev(data={"n": i}) for i in range(5)]
    for e in events[:3]:
        await writer.submit([e])
    # As after a crash between the drain's commit and its cursor: stored records come back.
    await asyncio.to_thread(writer.spool.append, [json.dumps(e.to_json()).encode() for e in events])
    writer._wake.set()
    await until(lambda: writer.spool.empty, what="the replay to drain")
    stored = [e async for e in writer.store.iter_events()]
    assert [e["data"]["n"] for e in stored] == [0, 1, 2, 3, 4]


async def test_a_record_the_database_refuses_goes_to_dead_letter(writer, registry):
    good = ev(data={"n": 1})
    bad = ev(data={"n": 2}).to_json()
    bad["data"] = {"text": "nul \u0000 inside"}  # jsonb refuses it; validation would have too
    later = ev(data={"n": 3})
    payloads = [json.dumps(good.to_json()).encode(), json.dumps(bad).encode(),
                json.dumps(later.to_json()).encode()]
    writer.store_up = False  # keep the writer from draining until all three are in place
    await asyncio.to_thread(writer.spool.append, payloads)
    writer.store_up = True
    writer._wake.set()
    await until(lambda: writer.spool.empty, what="the drain")
    stored = [e["data"]["n"] async for e in writer.store.iter_events()]
    assert stored == [1, 3]
    assert sample(registry, "usdcop_audit_dead_letter_total") == 1
    line = json.loads((writer.spool.dir / "dead-letter.jsonl").read_text())
    assert line["reason"] == "rejected by the database"


async def test_full_spool_answers_unavailable_and_keeps_what_it_has(pg_db, tmp_path, private_pg):
    store = PgStore(pg_db, timeout=1.0)
    spool = Spool(tmp_path / "spool", max_bytes=2000)
    w = AuditWriter(store, spool, retry_min=0.05, retry_max=0.3)
    await w.start()
    try:
        private_pg.stop()
        accepted = 0
        with pytest.raises(AuditUnavailable) as info:
            for i in range(100):
                await w.submit([ev(data={"n": i})])
                accepted += 1
        assert info.value.code == "spool_full" and "full" in info.value.detail
        assert 0 < accepted < 100 and spool.pending == accepted
        private_pg.start()
        await until(lambda: spool.empty and w.store_up, what="the drain")
        assert (await store.head())[0] == accepted
    finally:
        await w.close(flush_timeout=1.0)


def _cluster_pids(cluster) -> list[int]:
    main = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == main:
                        children.append(int(entry))
            except OSError:
                pass
    return [main, *children]


async def test_frozen_postgres_times_out_into_the_spool(writer, private_pg, registry):
    await writer.submit([ev(data={"n": 0})])
    pids = _cluster_pids(private_pg)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        [(outcome, _)] = await writer.submit([ev(data={"n": 1})])
        assert outcome == "spooled"
        assert sample(registry, "usdcop_audit_write_failures_total", reason="timeout") >= 1
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    await until(lambda: writer.spool.empty and writer.store_up, what="recovery after the freeze")
    assert [e["data"]["n"] async for e in writer.store.iter_events()] == [0, 1]


async def test_conflict_when_up_is_refused_at_once(writer):
    eid = str(uuid.uuid4())
    await writer.submit([ev(event_id=eid)])
    with pytest.raises(AuditConflict):
        await writer.submit([ev(event_id=eid, actor="someone-else")])


async def test_sqlite_writer_without_spool(tmp_path):
    w = AuditWriter(SqliteStore(tmp_path / "a.sqlite3"))
    await w.start()
    [(outcome, stored)] = await w.submit([ev()])
    assert outcome == "stored" and stored["sequence"] == 1
    await w.close()
    with pytest.raises(AuditUnavailable):
        await w.submit([ev()])


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs: a spool directory whose disk really fills up (ENOSPC)."""
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mounting a tmpfs needs root, which CI has")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_refuses_cleanly_and_loses_nothing_acknowledged(pg_db, tiny_disk, private_pg):
    store = PgStore(pg_db, timeout=1.0)
    spool = Spool(tiny_disk / "spool")  # the byte bound (256 MiB) is far above the disk's size
    w = AuditWriter(store, spool, retry_min=0.05, retry_max=0.3)
    await w.start()
    try:
        private_pg.stop()
        acknowledged = []
        with pytest.raises(AuditUnavailable) as info:
            for i in range(2000):
                await w.submit([ev(data={"n": i, "pad": "x" * 512})])
                acknowledged.append(i)
        assert info.value.code == "spool_full", (info.value.code, info.value.detail)
        assert 0 < len(acknowledged) < 2000
        private_pg.start()
        await until(lambda: spool.empty and w.store_up, what="the drain")
        head = (await store.head())[0]
        assert head == len(acknowledged)  # every acknowledged event, once; nothing else
        # and the sidecar takes events again once there is room
        await w.submit([ev(data={"n": "after"})])
        assert (await store.head())[0] == head + 1
    finally:
        await w.close(flush_timeout=1.0)
