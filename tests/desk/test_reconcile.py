"""Reconciliation on constructed audit trails (SQLite and Postgres) and Redis states."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from exporter.api.audit import AUDIT
from exporter.api.desk import DESK
from exporter.cache.trading_metrics import MetricsCache
from exporter.config import parse_config
from exporter.desk.metrics import DeskMetrics
from exporter.desk.reconcile import LEDGER_KEY, Reconciler
from tests.conftest import REDIS_TEST_URL
from tests.support.tools import free_port

DESK_CONFIG = parse_config("services: []\ndesk: {reconciliation: {stale_position_after: 1d, orphan_window: 1h}}\n").desk


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def redis_position(position_id: str, symbol: str, side: str, quantity: float, opened: str) -> dict:
    return {"position_id": position_id, "symbol": symbol, "side": side, "quantity": quantity,
            "entry_price": 4000.0, "entry_time": opened}


async def opened(audit, position_id, symbol, side, quantity, entry_time=None):
    await audit.log_position_opened({"position_id": position_id, "symbol": symbol, "side": side,
                                     "quantity": quantity, "entry_price": 4000.0,
                                     "entry_time": entry_time or ago(minutes=5)})


async def closed(audit, position_id, symbol, quantity=None):
    data = {"position_id": position_id, "symbol": symbol, "exit_price": 4010.0, "realized_pnl": 1.0}
    if quantity is not None:
        data["quantity"] = quantity
    await audit.log_position_closed(data)


def reconciler(audit_logger, redis_client, symbols=("USDCOP",), registry=None, pending=lambda: 0):
    return Reconciler(audit_logger.store, redis_client, lambda: symbols, lambda: DESK_CONFIG,
                      pending=pending, metrics=DeskMetrics(registry) if registry else None)


def rows(report) -> dict[str, tuple[float, float, bool]]:
    return {r["symbol"]: (r["audit_quantity"], r["redis_quantity"], r["mismatch"])
            for r in report["positions"]}


async def test_positions_agree_when_both_sides_tell_the_same_story(audit_logger, redis_client):
    cache = MetricsCache(redis_client)
    await opened(audit_logger, "p1", "USDCOP", "LONG", 100)
    await opened(audit_logger, "p2", "EURUSD", "SHORT", 50)
    await closed(audit_logger, "p2", "EURUSD", 20)  # partial close: 30 short remain
    await opened(audit_logger, "p3", "GBPUSD", "LONG", 7)
    await closed(audit_logger, "p3", "GBPUSD")  # no quantity: closes all of it
    await cache.set_position(redis_position("p1", "USDCOP", "LONG", 100, ago(minutes=5)))
    await cache.set_position(redis_position("p2", "EURUSD", "SHORT", 30, ago(minutes=5)))
    report = await reconciler(audit_logger, redis_client, ("USDCOP", "EURUSD", "GBPUSD")).run_once()
    assert rows(report) == {"USDCOP": (100.0, 100.0, False), "EURUSD": (-30.0, -30.0, False),
                            "GBPUSD": (0.0, 0.0, False)}
    assert report["mismatches"] == 0 and report["orphan_trades"] == [] and report["stale_positions"] == []
    assert report["issues"] == []
    by_symbol = {r["symbol"]: r for r in report["positions"]}
    assert by_symbol["EURUSD"]["audit_position_ids"] == ["p2"]
    assert by_symbol["EURUSD"]["redis_position_id"] == "p2"


async def test_each_kind_of_disagreement_is_a_mismatch(audit_logger, redis_client, redis_namespace):
    cache = MetricsCache(redis_client)
    await opened(audit_logger, "a1", "GBPUSD", "LONG", 10)  # only in the trail
    await cache.set_position(redis_position("r1", "USDJPY", "LONG", 3, ago(minutes=1)))  # only in Redis
    await opened(audit_logger, "a2", "AUDUSD", "LONG", 5)
    await cache.set_position(redis_position("a2", "AUDUSD", "SHORT", 5, ago(minutes=1)))  # wrong side
    await opened(audit_logger, "a3", "USDCOP", "LONG", 5)
    await cache.set_position(redis_position("a3", "USDCOP", "LONG", 4, ago(minutes=1)))  # wrong size
    await opened(audit_logger, "a4", "EURUSD", "LONG", 1)
    raw = aioredis.from_url(REDIS_TEST_URL)
    try:
        await raw.set(f"{redis_namespace}:position:active:EURUSD", b"{not json")
    finally:
        await raw.aclose()
    job = reconciler(audit_logger, redis_client, ("USDCOP", "USDJPY", "EURUSD"))
    report = await job.run_once()
    assert rows(report) == {
        "GBPUSD": (10.0, 0.0, True), "USDJPY": (0.0, 3.0, True), "AUDUSD": (5.0, -5.0, True),
        "USDCOP": (5.0, 4.0, True), "EURUSD": (1.0, 0.0, True)}
    eurusd = next(r for r in report["positions"] if r["symbol"] == "EURUSD")
    assert "position:active:EURUSD" in eurusd["problem"] and "JSON" in eurusd["problem"]
    assert report["mismatches"] == 5
    # The trail catches up: the next run reads only what was appended since.
    through = report["through_sequence"]
    await closed(audit_logger, "a1", "GBPUSD")
    report = await job.run_once()
    assert report["through_sequence"] == through + 1
    assert "GBPUSD" not in rows(report) and report["mismatches"] == 4  # flat on both sides now


async def test_orphan_trades_are_those_without_an_earlier_signal(audit_logger, redis_client):
    await audit_logger.log_signal_generated({"signal_id": "s1", "symbol": "USDCOP", "action": "BUY"})
    await audit_logger.log_trade_executed({"trade_id": "t1", "signal_id": "s1", "symbol": "USDCOP"})
    await audit_logger.log_trade_executed({"trade_id": "t2", "signal_id": "s2", "symbol": "USDCOP"})
    await audit_logger.log_signal_generated({"signal_id": "s2", "symbol": "USDCOP", "action": "SELL"})
    await audit_logger.log_trade_executed({"trade_id": "t3", "symbol": "USDCOP"})  # no signal id
    await audit_logger.log_trade_executed({"trade_id": "t4", "signal_id": "s2", "symbol": "USDCOP"})
    report = await reconciler(audit_logger, redis_client).run_once()
    orphans = [(o["trade_id"], o["signal_id"]) for o in report["orphan_trades"]]
    assert orphans == [("t2", "s2"), ("t3", None)]  # s2 came after t2: no decision explains t2


async def test_stale_positions_come_from_the_trail_and_from_redis(audit_logger, redis_client):
    cache = MetricsCache(redis_client)
    await opened(audit_logger, "old", "USDCOP", "LONG", 1, entry_time=ago(days=3))
    await opened(audit_logger, "new", "EURUSD", "LONG", 1)
    await cache.set_position(redis_position("old", "USDCOP", "LONG", 1, ago(days=3)))
    await cache.set_position(redis_position("lost", "USDJPY", "SHORT", 2, ago(days=2)))
    report = await reconciler(audit_logger, redis_client, ("USDCOP", "USDJPY")).run_once()
    stale = sorted((s["position_id"], s["source"], round(s["age_seconds"] / 86400)) for s in report["stale_positions"])
    assert stale == [("lost", "redis", 2), ("old", "audit", 3)]  # "old" counted once


async def test_events_the_fold_cannot_use_are_issues_not_failures(audit_logger, redis_client):
    await closed(audit_logger, "ghost", "USDCOP")
    await audit_logger.log_position_opened({"position_id": "p9", "symbol": "USDCOP", "side": "FLAT"})
    await opened(audit_logger, "p1", "USDCOP", "LONG", 2)
    await closed(audit_logger, "p1", "USDCOP", 3)
    report = await reconciler(audit_logger, redis_client).run_once()
    problems = [i["problem"] for i in report["issues"]]
    assert problems[0].startswith("closes position ghost, which the trail never opened")
    assert problems[1].startswith("needs position_id, symbol, side")
    assert problems[2] == "closes 3 of position p1, which had 2 open"
    assert rows(report)["USDCOP"] == (0.0, 0.0, False)


async def test_an_undrained_spool_skips_the_run_and_keeps_the_last_report(audit_logger, redis_client, registry):
    waiting = {"n": 0}
    job = reconciler(audit_logger, redis_client, registry=registry, pending=lambda: waiting["n"])
    first = await job.run_once()
    waiting["n"] = 3
    assert await job.run_once() is None
    assert job.report is first and job.last_problem.startswith("skipped: 3 audit events")
    assert registry.get_sample_value("usdcop_reconciliation_runs_total", {"result": "skipped"}) == 1
    assert registry.get_sample_value("usdcop_reconciliation_runs_total", {"result": "success"}) == 1


async def test_the_report_and_metrics_in_the_sidecar_on_postgres(sidecar, pg_dsn, redis_client):
    client = await sidecar(POSTGRES_URL=pg_dsn)
    app = client.server.app
    job = app[DESK].reconciler
    deadline = time.monotonic() + 10
    while job.report is None and time.monotonic() < deadline:  # the first run starts with the app
        await job.run_once()
    audit = app[AUDIT].logger
    await opened(audit, "p1", "USDCOP", "LONG", 100)
    await audit.log_trade_executed({"trade_id": "t1", "signal_id": "nope", "symbol": "USDCOP"})
    await MetricsCache(redis_client).set_position(redis_position("p1", "USDCOP", "LONG", 90, ago(minutes=1)))
    await job.run_once()
    answer = await client.get("/api/desk/reconciliation")
    assert answer.status == 200
    report = await answer.json()
    assert rows(report) == {"USDCOP": (100.0, 90.0, True)} and report["fresh"] is True
    assert [o["trade_id"] for o in report["orphan_trades"]] == ["t1"]
    assert (await client.get("/api/desk/reconciliation?symbol=USDCOP")).status == 400
    text = await (await client.get("/metrics")).text()
    assert 'usdcop_position_mismatch{symbol="USDCOP"} 1.0' in text
    assert "\nusdcop_orphan_trades 1.0" in text and "\nusdcop_stale_positions 0.0" in text
    assert "\nusdcop_reconciliation_last_success_timestamp_seconds " in text


async def test_only_shard_0_reconciles(sidecar):
    client = await sidecar(EXPORTER_SHARD="1/2")
    answer = await client.get("/api/desk/reconciliation")
    assert answer.status == 404 and "shard 0 runs it" in (await answer.json())["detail"]


async def test_without_a_report_the_route_answers_503_with_the_reason(sidecar):
    client = await sidecar(POSTGRES_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    job = client.server.app[DESK].reconciler
    await job.run_once()
    answer = await client.get("/api/desk/reconciliation")
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert "no reconciliation report yet" in (await answer.json())["detail"]


class CountingStore:
    """The real audit store, noting where each read of the trail starts and what it returns."""

    def __init__(self, store) -> None:
        self.store = store
        self.starts: list[int] = []
        self.read = 0

    async def iter_events(self, after: int = 0):
        self.starts.append(after)
        async for event in self.store.iter_events(after=after):
            self.read += 1
            yield event

    async def get_event(self, sequence: int):
        return await self.store.get_event(sequence)

    async def first_sequence(self):
        return await self.store.first_sequence()


def _fresh(store, redis_client, symbols=("USDCOP", "EURUSD")) -> Reconciler:
    return Reconciler(store, redis_client, lambda: symbols, lambda: DESK_CONFIG)


def _story(report) -> tuple:
    return (rows(report), report["orphan_trades"], report["issues"], report["through_sequence"],
            [(s["position_id"], s["source"]) for s in report["stale_positions"]])


async def test_a_restart_reads_only_what_came_after_the_saved_ledger(audit_logger, redis_client):
    await audit_logger.log_signal_generated({"signal_id": "s1", "symbol": "USDCOP"})
    await opened(audit_logger, "p1", "USDCOP", "LONG", 100)
    await opened(audit_logger, "p2", "EURUSD", "SHORT", 50)
    await closed(audit_logger, "p2", "EURUSD", 20)
    await audit_logger.log_trade_executed({"trade_id": "t1", "signal_id": "s9", "symbol": "USDCOP"})
    await closed(audit_logger, "ghost", "USDCOP")
    first = await _fresh(audit_logger.store, redis_client).run_once()
    assert first["through_sequence"] == 6
    await audit_logger.log_trade_executed({"trade_id": "t2", "signal_id": "s1", "symbol": "USDCOP"})
    await opened(audit_logger, "p3", "USDCOP", "SHORT", 30)
    # A new process: it takes up the saved ledger and reads the two new events only.
    counting = CountingStore(audit_logger.store)
    resumed = await _fresh(counting, redis_client).run_once()
    assert counting.starts == [6] and counting.read == 2
    assert rows(resumed)["USDCOP"] == (70.0, 0.0, True) and rows(resumed)["EURUSD"][0] == -30.0
    # The same answer as reading the whole trail.
    await redis_client.delete(LEDGER_KEY)
    whole = CountingStore(audit_logger.store)
    assert _story(await _fresh(whole, redis_client).run_once()) == _story(resumed)
    assert whole.starts == [0] and whole.read == 8


async def test_a_saved_ledger_of_another_trail_is_not_taken_up(audit_logger, redis_client):
    await opened(audit_logger, "p1", "USDCOP", "LONG", 5)
    await _fresh(audit_logger.store, redis_client).run_once()
    saved = await redis_client.get(LEDGER_KEY)
    assert saved["through"] == 1 and saved["open"][0][0] == "p1"
    await redis_client.set(LEDGER_KEY, {**saved, "through_hash": "00" * 32}, ttl=0)
    counting = CountingStore(audit_logger.store)
    await _fresh(counting, redis_client).run_once()
    assert counting.starts == [0] and counting.read == 1
    await redis_client.set(LEDGER_KEY, {"version": 1, "through": "junk"}, ttl=0)
    counting = CountingStore(audit_logger.store)
    report = await _fresh(counting, redis_client).run_once()
    assert counting.starts == [0] and rows(report)["USDCOP"][0] == 5.0
