"""Shortening the trail: forged purge records are refused, real purges verify; both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.audit import checkpoints as cps
from exporter.audit import purges
from exporter.audit.chain import format_time
from exporter.audit.events import parse_event
from exporter.audit.retention import Retention
from exporter.audit.verify import verify_store

from .conftest import event

KEY = b"k" * 32
DAY = 86400.0


async def _fill(store, n: int) -> None:
    for i in range(n):
        await store.append([[event(data={"i": i})]])


async def _checkpoint(store, directory, key, at: datetime | None = None, prev=None) -> dict:
    """A checkpoint of the head, in the database and in `directory`."""
    seq, digest = await store.head()
    cp = cps.make(seq, digest.hex(), seq, at or datetime.now(UTC), prev, key)
    await store.add_checkpoint(cp)
    cps.write_file(directory, cp)
    return cp


def _delete_prefix(tamper, store, through: int) -> None:
    """DELETE events 1..through with the triggers bypassed (an owner or superuser)."""
    statements = [("DELETE FROM {events} WHERE sequence <= %s", (through,))]
    if store.kind == "postgres":
        statements.append(("DELETE FROM usdcop_audit.event_ids WHERE sequence <= %s", (through,)))
    tamper.run(*statements)


async def _forge_purge(store, through: int, **extra) -> dict:
    """Append a valid-looking AUDIT_PURGED the way a role with INSERT on the tables can: the
    chain has no secret, so its hash links like any other event's."""
    target = await store.get_event(through)
    now = datetime.now(UTC)
    data = {"from_sequence": 1, "through_sequence": through,
            "through_hash": target["hash"].hex(), "purged": through,
            "horizon": format_time(now - timedelta(days=30)), "partitions": [], **extra}
    forged = parse_event({"event_type": "AUDIT_PURGED", "actor": "usdcop-exporter",
                          "data": data}, now=now, reserved=True)
    [[(outcome, stored)]] = await store.append([[forged]])
    assert outcome == "stored"
    return stored


async def test_forged_purge_by_sql_is_refused_as_unsigned(store, tamper, tmp_path):
    await _fill(store, 10)
    await _checkpoint(store, tmp_path / "cp", KEY)
    forged = await _forge_purge(store, 6)
    _delete_prefix(tamper, store, 6)
    for full in (True, False):
        result = await verify_store(store, tmp_path / "cp", KEY, full=full, retention=30 * DAY)
        assert not result["ok"] and result["status"] == "broken", result
        assert result["first_broken"]["reason"] == "purge_unsigned"
        assert result["first_broken"]["sequence"] == forged["sequence"]


async def test_forged_purge_with_a_made_up_signature_is_refused(store, tamper, tmp_path):
    await _fill(store, 8)
    await _forge_purge(store, 5, signature="ab" * 32)
    _delete_prefix(tamper, store, 5)
    result = await verify_store(store, tmp_path / "cp", KEY, retention=30 * DAY)
    assert result["first_broken"]["reason"] == "purge_signature"


async def test_without_a_key_a_forged_purge_is_caught_by_the_checkpoints_it_contradicts(
        store, tamper, tmp_path):
    await _fill(store, 4)
    first = await _checkpoint(store, tmp_path / "cp", None)  # unsigned: no key
    await _fill(store, 6)
    await _checkpoint(store, tmp_path / "cp", None, prev=first)
    # The forger names the checkpoint it covers, so only its time gives it away.
    await _forge_purge(store, 6, checkpoint=purges.named_checkpoint(first))
    _delete_prefix(tamper, store, 6)
    result = await verify_store(store, tmp_path / "cp", None, retention=30 * DAY)
    assert not result["ok"]
    assert result["first_broken"]["reason"] == "purge_too_recent"
    assert "checkpoint-00000000000000000004.json" in result["first_broken"]["detail"]


async def test_without_a_key_an_intact_chain_is_not_plain_ok(store, tmp_path):
    await _fill(store, 3)
    await _checkpoint(store, tmp_path / "cp", None)
    result = await verify_store(store, tmp_path / "cp", None, full=False, retention=30 * DAY)
    assert result["ok"] and result["status"] == "unauthenticated"
    assert result["mode"] == "full"  # nothing signed to continue from
    assert any("purges cannot be authenticated" in w for w in result["warnings"])


async def _old_events(store, clock, old: datetime, n: int) -> None:
    if store.kind == "postgres":
        from exporter.audit.pg_schema import month_start
        await store.maintain(months=[month_start(old)])
    clock.set(old)
    for i in range(n):
        await store.append([[parse_event({"event_type": "TRADE_EXECUTED", "data": {"i": i}},
                                         now=old, retention=None)]])
    clock.set(None)


async def test_a_real_purge_past_retention_verifies_full_and_incremental(store, clock, tmp_path):
    old = datetime.now(UTC) - timedelta(days=80)
    await _old_events(store, clock, old, 3)
    first = await _checkpoint(store, tmp_path / "cp", KEY, at=old)
    await _old_events(store, clock, old, 2)
    await _fill(store, 3)
    second = await _checkpoint(store, tmp_path / "cp", KEY, prev=first)
    result = await Retention(store, 30 * DAY, key=KEY, directory=tmp_path / "cp").purge()
    assert result["purged"] == 5 and result["through_sequence"] == 5
    record = result["event"]["data"]
    assert record["checkpoint"] == purges.named_checkpoint(first)
    assert purges.signature_ok(record, KEY)
    await _fill(store, 2)
    full = await verify_store(store, tmp_path / "cp", KEY, full=True, retention=30 * DAY)
    assert full["ok"] and full["status"] == "ok", full
    assert full["mode"] == "full" and full["range"] == {"from": 6, "through": 11}
    incremental = await verify_store(store, tmp_path / "cp", KEY, full=False,
                                     retention=30 * DAY)
    assert incremental["ok"], incremental
    assert incremental["mode"] == "incremental"
    assert incremental["trusted"] == {"from": 6, "through": second["sequence"],
                                      "checkpoint": "directory"}
    assert incremental["range"] == {"from": 9, "through": 11} and incremental["checked"] == 3


async def test_a_purge_that_does_not_name_a_covered_checkpoint_is_refused(store, clock, tmp_path):
    old = datetime.now(UTC) - timedelta(days=80)
    await _old_events(store, clock, old, 3)
    seq, digest = await store.head()
    # Only in the directory: the database's purge cannot see it, so cannot name it.
    cps.write_file(tmp_path / "cp", cps.make(seq, digest.hex(), seq, old, None, KEY))
    await _fill(store, 2)
    await Retention(store, 30 * DAY, key=KEY).purge()
    result = await verify_store(store, tmp_path / "cp", KEY, retention=30 * DAY)
    assert result["first_broken"]["reason"] == "purge_unnamed_checkpoint", result


async def test_a_signed_purge_with_a_horizon_inside_the_retention_is_refused(store, tamper,
                                                                            tmp_path):
    await _fill(store, 6)
    now = datetime.now(UTC)
    data = {"horizon": format_time(now - timedelta(days=1)), "at": format_time(now),
            "retention": 30 * DAY, "checkpoint": None}
    target = await store.get_event(4)
    data.update(from_sequence=1, through_sequence=4, through_hash=target["hash"].hex(),
                purged=4, partitions=[])
    data["signature"] = purges.sign(data, KEY)
    await store.append([[parse_event({"event_type": "AUDIT_PURGED", "data": data}, now=now,
                                     reserved=True)]])
    _delete_prefix(tamper, store, 4)
    result = await verify_store(store, None, KEY, retention=30 * DAY)
    assert result["first_broken"]["reason"] == "purge_too_recent", result


async def test_a_purge_copy_that_differs_from_the_chain_is_named(store, clock, tmp_path):
    old = datetime.now(UTC) - timedelta(days=80)
    await _old_events(store, clock, old, 3)
    await _fill(store, 1)
    result = await Retention(store, 30 * DAY, key=KEY, directory=tmp_path / "cp").purge()
    copy = tmp_path / "cp" / purges.file_name(result["through_sequence"])
    copy.write_text(copy.read_text().replace('"purged": 3', '"purged": 2'))
    verified = await verify_store(store, tmp_path / "cp", KEY, retention=30 * DAY)
    assert verified["first_broken"]["reason"] == "purge_mismatch", verified


@pytest.mark.parametrize("full", [False, True])
async def test_incremental_runs_hash_only_what_follows_the_signed_checkpoint(store, tamper,
                                                                              tmp_path, full):
    await _fill(store, 5)
    await _checkpoint(store, tmp_path / "cp", KEY)
    await _fill(store, 3)
    result = await verify_store(store, tmp_path / "cp", KEY, full=full)
    assert result["ok"]
    if full:
        assert result["range"] == {"from": 1, "through": 8} and result["trusted"] is None
    else:
        assert result["range"] == {"from": 6, "through": 8} and result["checked"] == 3
        assert result["trusted"]["through"] == 5
    tamper.set_actor(7, "mallory")  # after the checkpoint: every run sees it
    result = await verify_store(store, tmp_path / "cp", KEY, full=full)
    assert result["first_broken"]["sequence"] == 7
    assert result["first_broken"]["reason"] == "hash_mismatch"


async def test_incremental_runs_check_the_anchoring_event_and_the_first_link(store, tamper,
                                                                            tmp_path):
    await _fill(store, 5)
    await _checkpoint(store, tmp_path / "cp", KEY)
    tamper.set_actor(5, "mallory")  # the checkpoint's own event
    result = await verify_store(store, tmp_path / "cp", KEY, full=False)
    assert result["first_broken"]["sequence"] == 5
    assert result["first_broken"]["reason"] == "hash_mismatch"
    tamper.set_actor(5, None)
    tamper.set_actor(1, "mallory")  # the first event
    result = await verify_store(store, tmp_path / "cp", KEY, full=False)
    assert result["first_broken"] == {"sequence": 1, "reason": "hash_mismatch",
                                      "detail": "event 1 does not match its hash"}
    tamper.set_actor(1, None)
    tamper.set_actor(3, "mallory")  # inside the trusted range: only a full run re-hashes it
    assert (await verify_store(store, tmp_path / "cp", KEY, full=False))["ok"]
    full = await verify_store(store, tmp_path / "cp", KEY, full=True)
    assert full["first_broken"]["sequence"] == 3


async def test_incremental_run_after_a_prefix_cut_behind_a_forged_purge(store, tamper, tmp_path):
    await _fill(store, 6)
    await _checkpoint(store, tmp_path / "cp", KEY)
    await _fill(store, 2)
    await _forge_purge(store, 3)
    _delete_prefix(tamper, store, 3)
    result = await verify_store(store, tmp_path / "cp", KEY, full=False, retention=30 * DAY)
    assert result["first_broken"]["reason"] == "purge_unsigned", result
    # Without even a forged record the missing prefix is a gap.
    await _fill(store, 1)
    _delete_prefix(tamper, store, 4)
    result = await verify_store(store, tmp_path / "cp", KEY, full=False, retention=30 * DAY)
    assert result["first_broken"]["reason"] == "sequence_gap", result


@pytest.mark.parametrize("full", [True, False])
async def test_a_purge_record_that_is_not_one_is_named_not_raised(store, tamper, tmp_path, full):
    await _fill(store, 5)
    await _checkpoint(store, tmp_path / "cp", KEY)
    await _forge_purge(store, 3, through_hash="not hex")
    _delete_prefix(tamper, store, 3)
    for key in (None, KEY):
        result = await verify_store(store, tmp_path / "cp", key, full=full)
        assert result["first_broken"]["reason"] == "purge_malformed", result
        assert result["mode"] == ("incremental" if key and not full else "full")


def _delete_range(tamper, store, first: int, through: int) -> None:
    """DELETE events first..through from the middle, triggers bypassed."""
    statements = [("DELETE FROM {events} WHERE sequence BETWEEN %s AND %s", (first, through))]
    if store.kind == "postgres":
        statements.append(("DELETE FROM usdcop_audit.event_ids WHERE sequence BETWEEN %s AND %s",
                           (first, through)))
    tamper.run(*statements)


async def test_an_incremental_run_sees_events_cut_from_the_trusted_range(store, tamper, tmp_path):
    """The range a signed checkpoint vouches for is not re-hashed, but a deleted event in it
    is a gap every run names."""
    await _fill(store, 24)
    await _checkpoint(store, tmp_path / "cp", KEY)
    await _fill(store, 2)
    _delete_range(tamper, store, 10, 14)
    result = await verify_store(store, tmp_path / "cp", KEY, full=False)
    assert not result["ok"], result
    assert result["first_broken"]["reason"] == "sequence_gap"
    assert "5 of the events 1..24 are missing" in result["first_broken"]["detail"]
    full = await verify_store(store, tmp_path / "cp", KEY, full=True)
    assert full["first_broken"]["reason"] == "sequence_gap"
