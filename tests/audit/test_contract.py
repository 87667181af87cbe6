"""The store contract: one suite, run against Postgres and SQLite."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from exporter.audit import checkpoints as cps
from exporter.audit.chain import GENESIS, event_hash
from exporter.audit.errors import AuditConflict
from exporter.audit.events import parse_event
from exporter.audit.query import Query
from exporter.audit.retention import Retention
from exporter.audit.verify import verify_store

from .conftest import event

KEY = b"k" * 32


def _chain_form(view: dict) -> dict:
    out = dict(view)
    out["prev_hash"] = bytes.fromhex(view["prev_hash"])
    out["hash"] = bytes.fromhex(view["hash"])
    return out


async def _fill(store, n: int, **fields) -> list[dict]:
    out = []
    for i in range(n):
        (outcome, ev), = (await store.append([[event(data={"i": i}, **fields)]]))[0]
        assert outcome == "stored"
        out.append(ev)
    return out


async def test_first_event_links_to_genesis_and_hash_is_recomputable(store):
    ev = event(event_id=str(uuid.uuid4()), actor="engine-1",
               data={"price": 4250.5, "qty": 1000, "tags": ["a", "ñ"], "ok": True, "none": None})
    [[(outcome, stored)]] = await store.append([[ev]])
    assert outcome == "stored"
    assert stored["sequence"] == 1
    assert stored["prev_hash"] == GENESIS.hex()
    assert stored["received_at"].endswith("Z") and len(stored["received_at"]) == 27
    assert event_hash(GENESIS, _chain_form(stored)).hex() == stored["hash"]
    [again] = [e async for e in store.iter_events()]
    assert again["hash"].hex() == stored["hash"]
    assert again["data"] == ev.data


async def test_same_event_again_is_a_duplicate_answering_the_stored_event(store):
    eid = str(uuid.uuid4())
    [[(_, first)]] = await store.append([[event(event_id=eid, timestamp="2026-01-01T00:00:00Z")]])
    # The same client fields, offset written differently: still the same event.
    [[(outcome, second)]] = await store.append(
        [[event(event_id=eid.upper(), timestamp="2025-12-31T19:00:00-05:00")]])
    assert outcome == "duplicate"
    assert second == first
    assert (await store.head())[0] == 1


async def test_same_event_id_with_other_fields_conflicts_and_stores_nothing(store):
    eid = str(uuid.uuid4())
    await store.append([[event(event_id=eid)]])
    fresh = event()
    [result] = await store.append([[fresh, event(event_id=eid, data={"signal_id": "other"})]])
    assert isinstance(result, AuditConflict)
    assert result.event_id == eid
    assert (await store.head())[0] == 1  # the unit is all-or-nothing
    rows = await store.query(Query(limit=10))
    assert fresh.event_id not in {r["event_id"] for r in rows}


async def test_units_in_one_batch_are_independent(store):
    eid = str(uuid.uuid4())
    await store.append([[event(event_id=eid)]])
    a, b = event(), event()
    results = await store.append([[a], [event(event_id=eid, actor="x")], [b], [a]])
    assert results[0][0][0] == "stored"
    assert isinstance(results[1], AuditConflict)
    assert results[2][0][0] == "stored"
    assert results[3][0][0] == "duplicate"
    assert results[3][0][1]["sequence"] == results[0][0][1]["sequence"]
    assert [r[0][1]["sequence"] for r in (results[0], results[2])] == [2, 3]


async def test_events_without_id_are_never_merged(store):
    [[(_, a)]] = await store.append([[event()]])
    [[(_, b)]] = await store.append([[event()]])
    assert a["event_id"] != b["event_id"]
    assert (a["sequence"], b["sequence"]) == (1, 2)


async def test_query_filters_and_cursor_walk_every_event_once(store):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    for i in range(25):
        ts = (base + timedelta(minutes=i)).isoformat()
        kind = "TRADE_EXECUTED" if i % 2 else "SIGNAL_GENERATED"
        symbol = "USDCOP" if i % 3 else "EURUSD"
        await store.append([[parse_event({"event_type": kind, "symbol": symbol, "timestamp": ts,
                                          "data": {"i": i}}, now=now, retention=None)]])
    seen, before = [], None
    while True:
        rows = await store.query(Query(limit=7, before=before))
        page = rows[:7]
        seen.extend(r["sequence"] for r in page)
        if len(rows) <= 7:
            break
        before = page[-1]["sequence"]
    assert seen == list(range(25, 0, -1))
    trades = await store.query(Query(event_type="TRADE_EXECUTED", limit=100))
    assert {r["event_type"] for r in trades} == {"TRADE_EXECUTED"} and len(trades) == 12
    eur = await store.query(Query(symbol="EURUSD", limit=100))
    assert [r["data"]["i"] for r in eur] == [24, 21, 18, 15, 12, 9, 6, 3, 0]
    window = await store.query(Query(start=base + timedelta(minutes=5),
                                     end=base + timedelta(minutes=8), limit=100))
    assert [r["data"]["i"] for r in window] == [7, 6, 5]  # start inclusive, end exclusive


async def test_verify_passes_on_an_intact_chain_with_checkpoints(store, tmp_path):
    await _fill(store, 5)
    cp = cps.make(5, (await store.head())[1].hex(), 5, datetime.now(UTC), None, KEY)
    assert await store.add_checkpoint(cp)
    assert not await store.add_checkpoint(cp)  # one per sequence
    cps.write_file(tmp_path / "cp", cp)
    result = await verify_store(store, tmp_path / "cp", KEY)
    assert result["ok"], result
    assert result["checked"] == 5 and result["head_sequence"] == 5
    assert result["first_broken"] is None
    assert result["checkpoint"]["sequence"] == 5 and result["checkpoint"]["signed"]


async def test_changed_event_is_named(store, tamper, tmp_path):
    await _fill(store, 6)
    tamper.set_actor(4, "mallory")
    result = await verify_store(store, tmp_path / "none", KEY)
    assert not result["ok"]
    assert result["first_broken"]["sequence"] == 4
    assert result["first_broken"]["reason"] == "hash_mismatch"


async def test_deleted_event_is_named(store, tamper, tmp_path):
    await _fill(store, 6)
    tamper.delete(3)
    result = await verify_store(store, None, KEY)
    assert result["first_broken"]["sequence"] == 3
    assert result["first_broken"]["reason"] == "sequence_gap"


async def test_deleted_first_events_without_purge_record_are_named(store, tamper):
    await _fill(store, 4)
    tamper.delete(1, 2)
    result = await verify_store(store, None, KEY)
    assert result["first_broken"] == {"sequence": 3, "reason": "sequence_gap",
                                      "detail": result["first_broken"]["detail"]}


async def test_reordered_events_are_named(store, tamper):
    await _fill(store, 6)
    tamper.swap(2, 5)
    result = await verify_store(store, None, KEY)
    assert result["first_broken"]["sequence"] == 2
    assert result["first_broken"]["reason"] in ("prev_hash_mismatch", "hash_mismatch")


async def test_cut_tail_is_caught_by_the_checkpoint_directory(store, tamper, tmp_path):
    await _fill(store, 8)
    head = await store.head()
    cp = cps.make(head[0], head[1].hex(), 8, datetime.now(UTC), None, KEY)
    await store.add_checkpoint(cp)
    cps.write_file(tmp_path / "cp", cp)
    tamper.cut_tail(5)  # events 6..8 and the database's checkpoint gone
    result = await verify_store(store, tmp_path / "cp", KEY)
    assert result["first_broken"]["sequence"] == 6
    assert result["first_broken"]["reason"] == "tail_cut"
    # Without the directory the chain alone looks fine, and the answer says it cannot tell.
    alone = await verify_store(store, tmp_path / "empty", KEY)
    assert alone["ok"] and any("cut-off tail" in w for w in alone["warnings"])


async def test_forged_checkpoint_signature_is_named(store, tmp_path):
    await _fill(store, 3)
    head = await store.head()
    cp = cps.make(3, head[1].hex(), 3, datetime.now(UTC), None, b"wrong-key-wrong-key")
    cps.write_file(tmp_path / "cp", cp)
    result = await verify_store(store, tmp_path / "cp", KEY)
    assert result["first_broken"]["reason"] == "checkpoint_signature"
    unsigned = cps.make(3, head[1].hex(), 3, datetime.now(UTC), None, None)
    cps.write_file(tmp_path / "cp2", unsigned)
    result = await verify_store(store, tmp_path / "cp2", KEY)
    assert result["first_broken"]["reason"] == "checkpoint_unsigned"
    result = await verify_store(store, tmp_path / "cp2", None)
    assert result["ok"] and any("unsigned" in w for w in result["warnings"])


async def test_checkpoint_with_another_hash_is_named(store, tmp_path):
    await _fill(store, 3)
    cp = cps.make(2, "ab" * 32, 2, datetime.now(UTC), None, KEY)
    cps.write_file(tmp_path / "cp", cp)
    result = await verify_store(store, tmp_path / "cp", KEY)
    assert result["first_broken"]["sequence"] == 2
    assert result["first_broken"]["reason"] == "checkpoint_mismatch"


async def test_update_and_delete_are_refused_by_the_database(store):
    await _fill(store, 2)
    await store.add_checkpoint(cps.make(2, (await store.head())[1].hex(), 2, datetime.now(UTC),
                                        None, KEY))
    if store.kind == "postgres":
        with psycopg.connect(store.url) as conn:
            for text in ("UPDATE usdcop_audit.events SET actor = 'x'",
                         "DELETE FROM usdcop_audit.events",
                         "TRUNCATE usdcop_audit.events",
                         "UPDATE usdcop_audit.event_ids SET sequence = 9",
                         "DELETE FROM usdcop_audit.checkpoints"):
                with pytest.raises(psycopg.Error, match="append-only"):
                    conn.execute(text)
                conn.rollback()
    else:
        db = sqlite3.connect(store.path)
        for text in ("UPDATE events SET actor = 'x'", "DELETE FROM events",
                     "DELETE FROM checkpoints", "UPDATE checkpoints SET count = 0"):
            with pytest.raises(sqlite3.DatabaseError, match="refused"):
                db.execute(text)
        db.close()
    assert [e["sequence"] async for e in store.iter_events()] == [1, 2]


async def test_data_survives_the_store_exactly_as_hashed(store):
    data = {"f": [0.1, 1e-7, 1e21, 123456.789, -0.0, 5e-324, 1.7976931348623157e308, 2.0],
            "i": [0, -1, 2**53 - 1, -(2**53 - 1)], "s": ["\u20ac", "\U0001f600", "\n\t\"\\", ""],
            "nested": {"b": {"a": [None, True, False, {}]}, "\u00e9": 1, "e": 2}}
    await store.append([[event(data=data)]])
    result = await verify_store(store, None, KEY)
    assert result["ok"], result


async def test_retention_purges_old_events_records_it_and_verification_continues(store, clock,
                                                                                  tmp_path):
    old = datetime.now(UTC) - timedelta(days=80)
    if store.kind == "postgres":
        from exporter.audit.pg_schema import month_start
        await store.maintain(months=[month_start(old)])
    clock.set(old)
    for i in range(5):
        await store.append([[parse_event({"event_type": "TRADE_EXECUTED", "data": {"i": i}},
                                         now=old, retention=None)]])
    clock.set(None)
    recent = await _fill(store, 3)
    retention = Retention(store, 30 * 86400.0, key=KEY, directory=tmp_path / "cp")
    result = await retention.purge()
    assert result["purged"] == 5 and result["through_sequence"] == 5
    if store.kind == "postgres":
        assert result["partitions"], "the old month's partition is dropped whole"
    remaining = [e async for e in store.iter_events()]
    assert [e["sequence"] for e in remaining] == [6, 7, 8, 9]
    purge = remaining[-1]
    assert purge["event_type"] == "AUDIT_PURGED"
    assert purge["data"]["through_sequence"] == 5 and purge["data"]["from_sequence"] == 1
    assert purge["data"]["through_hash"] == remaining[0]["prev_hash"].hex()
    assert recent[0]["sequence"] == 6
    assert purge["data"]["signature"] and purge["data"]["retention"] == 30 * 86400.0
    on_disk = json.loads((tmp_path / "cp" / "purge-00000000000000000005.json").read_text())
    assert on_disk == purge["data"]
    await _fill(store, 2)
    verified = await verify_store(store, tmp_path / "cp", KEY)
    assert verified["ok"], verified
    assert verified["checked"] == 6 and verified["status"] == "ok"
    again = await retention.purge()
    assert again == {"purged": 0, "through_sequence": None, "partitions": []}


async def test_retention_never_purges_events_dated_inside_the_horizon(store, clock):
    old = datetime.now(UTC) - timedelta(days=80)
    if store.kind == "postgres":
        from exporter.audit.pg_schema import month_start
        await store.maintain(months=[month_start(old)])
    clock.set(old)
    # Received long ago, but dated (within the allowed skew) after the horizon would be: kept.
    await store.append([[parse_event({"event_type": "TRADE_EXECUTED"}, now=old)]])
    await store.append([[parse_event({"event_type": "TRADE_EXECUTED",
                                      "timestamp": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
                                     now=datetime.now(UTC))]])
    clock.set(None)
    result = await Retention(store, 30 * 86400.0).purge()
    remaining = [e["sequence"] async for e in store.iter_events()]
    assert 2 in remaining
    if store.kind == "postgres":  # whole partitions only: the shared partition stays
        assert result["purged"] == 0 and remaining == [1, 2]
    else:
        assert result["purged"] == 1 and remaining == [2, 3]
