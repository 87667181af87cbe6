"""The library surface: top-level imports, getters, StructuredLogger."""

import asyncio

import pytest
from loguru import logger

import exporter
from exporter import HealthChecker, StructuredLogger, get_logger


def test_top_level_names():
    for name in exporter.__all__:
        assert getattr(exporter, name) is not None


def test_structured_logger_context_child_and_records():
    records = []
    sink = logger.add(lambda m: records.append(m.record), level="DEBUG")
    try:
        log = get_logger(service="TradingEngine")
        assert log.get_context() == {"service": "TradingEngine"}
        child = log.child(user_id="u1")
        assert child.get_context() == {"service": "TradingEngine", "user_id": "u1"}
        assert log.get_context() == {"service": "TradingEngine"}
        child.info("Processing signal", {"signal_id": "sig_123"}, {"confidence": 0.85})
        log.error("Failed to execute trade", RuntimeError("Connection timeout"), {"symbol": "USDCOP"})
        log.warn("slow")
    finally:
        logger.remove(sink)
    info, error, warn = records
    assert info["message"] == "Processing signal"
    assert info["extra"]["user_id"] == "u1"
    assert info["extra"]["context"] == {"signal_id": "sig_123"}
    assert info["extra"]["metadata"] == {"confidence": 0.85}
    assert error["level"].name == "ERROR"
    assert error["extra"]["error"] == {"type": "RuntimeError", "message": "Connection timeout"}
    assert warn["level"].name == "WARNING"


async def test_time_in_all_three_forms():
    records = []
    sink = logger.add(lambda m: records.append(m.record), level="DEBUG")
    log = StructuredLogger(service="t")
    try:
        async def work():
            await asyncio.sleep(0)
            return 42

        assert await log.time("call", work) == 42
        async with log.time("block"):
            pass

        @log.time("decorated")
        async def decorated():
            return 7

        assert await decorated() == 7

        @log.time("sync")
        def plain():
            return 3

        assert plain() == 3
    finally:
        logger.remove(sink)
    assert [r["extra"]["operation"] for r in records] == ["call", "block", "decorated", "sync"]
    assert all(r["extra"]["duration_ms"] >= 0 for r in records)


async def test_seed_health_checker_example():
    checker = HealthChecker()

    async def check_custom():
        return {"success": True, "latency_ms": 50, "metadata": {"custom": "data"}}

    checker.register_service("test", health_check=check_custom, check_interval=60)
    health = await checker.check_service("test")
    assert health["status"] == "healthy"
    overall = await checker.check_all_services()
    assert overall["overall_status"] == "healthy"
    assert overall["summary"]["total"] == 1


async def test_cache_getters_run_the_seed_example_in_memory(monkeypatch):
    from exporter import defaults

    for name in ("REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPORTER_LISTEN", "nonsense")  # not the cache's business
    for getter in (defaults._cache_settings, defaults._cache_client, defaults.get_signal_cache,
                   defaults.get_metrics_cache):
        getter.cache_clear()
    signals = exporter.get_signal_cache()
    assert signals is exporter.get_signal_cache()
    await signals.set_latest({"signal_id": "sig_123", "timestamp": "2026-01-01T00:00:00+00:00",
                              "symbol": "USDCOP", "action": "BUY", "confidence": 0.85, "price": 4250.5})
    assert (await signals.get_latest())["signal_id"] == "sig_123"
    metrics = exporter.get_metrics_cache()
    await metrics.set_financial_metrics({"timestamp": "2026-01-01T00:00:00+00:00", "total_pnl": 1250.75})
    assert (await metrics.get_financial_metrics())["total_pnl"] == 1250.75


def test_latency_getters_work_in_process(monkeypatch):
    from exporter import defaults

    monkeypatch.delenv("EXPORTER_URL", raising=False)
    defaults._latency_kit.cache_clear()
    try:
        monitor = exporter.get_latency_monitor()
        assert monitor is exporter.get_latency_monitor()
        monitor.record_latency("trading-api", "execute_trade", 125, True, {"symbol": "USDCOP"})
        assert monitor.get_latency_stats("trading-api", "execute_trade")["count"] == 1
        perf = exporter.get_performance_logger()
        op = perf.start_operation("model_inference")
        perf.end_operation(op, True, {"model": "xgboost"})
        assert perf.get_metrics("model_inference")["count"] == 1
    finally:
        defaults._latency_kit().close()
        defaults._latency_kit.cache_clear()


async def test_audit_getter_runs_the_seed_example_on_sqlite(monkeypatch, tmp_path):
    from exporter import defaults

    for name in ("POSTGRES_URL", "POSTGRES_URL_FILE", "POSTGRES_ADMIN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDIT_SQLITE_PATH", str(tmp_path / "audit.sqlite3"))
    monkeypatch.setenv("AUDIT_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("AUDIT_CHECKPOINT_DIR", str(tmp_path / "cp"))
    defaults.get_audit_logger.cache_clear()
    audit = exporter.get_audit_logger()
    try:
        assert audit is exporter.get_audit_logger()
        await audit.log_signal_generated({"signal_id": "sig_123", "symbol": "USDCOP", "action": "BUY",
                                          "confidence": 0.85, "price": 4250.5, "model_version": "v1.0"})
        await audit.log_position_opened({"position_id": "pos_789", "symbol": "USDCOP", "entry_price": 4250.5,
                                         "quantity": 1000, "entry_time": "2026-01-01T00:00:00+00:00"})
        trail = await audit.get_audit_trail(event_type="SIGNAL_GENERATED", symbol="USDCOP", limit=100)
        assert [e["data"]["signal_id"] for e in trail["events"]] == ["sig_123"]
    finally:
        await audit.close()
        defaults.get_audit_logger.cache_clear()


@pytest.fixture
def fresh_audit_getter(monkeypatch, tmp_path):
    """get_audit_logger() built anew from the environment, in an empty working directory."""
    for name in ("POSTGRES_URL", "POSTGRES_URL_FILE", "AUDIT_SQLITE_PATH", "AUDIT_SPOOL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    exporter.get_audit_logger.cache_clear()
    records = []
    sink = logger.add(lambda m: records.append(m.record["message"]), level="INFO")
    yield records
    logger.remove(sink)
    exporter.get_audit_logger.cache_clear()


def test_the_audit_getter_says_once_where_it_writes_by_default(fresh_audit_getter, tmp_path):
    exporter.get_audit_logger()
    exporter.get_audit_logger()
    lines = [m for m in fresh_audit_getter if m.startswith("audit trail:")]
    assert lines == [f"audit trail: SQLite file {tmp_path / 'usdcop-audit.sqlite3'} "
                     "(the default; set AUDIT_SQLITE_PATH, or POSTGRES_URL for Postgres)"]


def test_the_audit_getter_names_the_configured_places(fresh_audit_getter, monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIT_SQLITE_PATH", str(tmp_path / "trail.db"))
    exporter.get_audit_logger()
    exporter.get_audit_logger.cache_clear()
    monkeypatch.setenv("POSTGRES_URL", "postgresql://engine:s3cret@127.0.0.1:5432/trading")
    monkeypatch.setenv("AUDIT_SPOOL_DIR", str(tmp_path / "spool"))
    exporter.get_audit_logger()
    lines = [m for m in fresh_audit_getter if m.startswith("audit trail:")]
    assert lines[0] == f"audit trail: SQLite file {tmp_path / 'trail.db'} (AUDIT_SQLITE_PATH)"
    assert lines[1] == ("audit trail: Postgres postgresql://engine:***@127.0.0.1:5432/trading "
                        f"(POSTGRES_URL), outage spool {tmp_path / 'spool'} (AUDIT_SPOOL_DIR)")
    assert "s3cret" not in "".join(fresh_audit_getter)
