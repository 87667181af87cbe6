"""AuditLogger as a library: typed helpers, lazy start, hooks, trail queries, metrics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from exporter.audit.errors import AuditConflict, AuditValidationError
from exporter.audit.logger import AuditLogger
from exporter.audit.own import SidecarEvents
from exporter.audit.service import AuditService
from exporter.config.model import ServiceConfig
from exporter.health.checker import HealthEvent
from exporter.health.result import ProbeResult

from .conftest import Tamper, settings


@pytest.fixture
async def audit(tmp_path):
    log = AuditLogger.from_settings(settings(tmp_path))
    yield log
    await log.close()


async def test_helpers_split_symbol_from_data_and_start_lazily(audit):
    ev = await audit.log_position_opened({"position_id": "pos_1", "symbol": "USDCOP",
                                          "entry_price": 4250.5, "quantity": 1000,
                                          "side": "LONG"}, actor="engine")
    assert ev["event_type"] == "POSITION_OPENED" and ev["symbol"] == "USDCOP"
    assert ev["data"] == {"position_id": "pos_1", "entry_price": 4250.5, "quantity": 1000,
                          "side": "LONG"}
    assert ev["actor"] == "engine" and ev["sequence"] == 1
    for helper, record in ((audit.log_signal_generated, {"signal_id": "s"}),
                           (audit.log_position_closed, {"position_id": "p"}),
                           (audit.log_trade_executed, {"trade_id": "t"})):
        await helper(record)
    trail = await audit.get_audit_trail(limit=3)
    assert [e["sequence"] for e in trail["events"]] == [4, 3, 2] and trail["next_cursor"]
    rest = await audit.get_audit_trail(limit=10, cursor=trail["next_cursor"])
    assert [e["sequence"] for e in rest["events"]] == [1] and rest["next_cursor"] is None


async def test_helpers_require_their_identifying_field(audit):
    with pytest.raises(AuditValidationError) as info:
        await audit.log_trade_executed({"symbol": "USDCOP", "price": 1.0})
    assert info.value.field == "data.trade_id"
    with pytest.raises(AuditValidationError):
        await audit.log_signal_generated(["not", "a", "mapping"])


async def test_log_event_idempotency_and_times(audit):
    eid = uuid.uuid4()
    when = datetime.now(UTC) - timedelta(minutes=1)
    first = await audit.log_event("ORDER_CANCELLED", data={"why": "drill"}, event_id=eid,
                                  timestamp=when)
    again = await audit.log_event("ORDER_CANCELLED", data={"why": "drill"}, event_id=str(eid),
                                  timestamp=when.isoformat())
    assert again == first
    with pytest.raises(AuditConflict):
        await audit.log_event("ORDER_CANCELLED", data={"why": "real"}, event_id=eid,
                              timestamp=when)
    with pytest.raises(AuditValidationError, match="offset"):
        await audit.log_event("ORDER_CANCELLED", timestamp=datetime(2026, 1, 1))
    with pytest.raises(AuditValidationError) as info:
        await audit.get_audit_trail(limit=0)
    assert info.value.field == "limit"
    with pytest.raises(AuditValidationError):
        await audit.get_audit_trail(cursor="nope")
    window = await audit.get_audit_trail(start_time=when - timedelta(seconds=1),
                                         end_time=when + timedelta(seconds=1))
    assert [e["event_id"] for e in window["events"]] == [str(eid)]


def _event(old: str, new: str) -> HealthEvent:
    service = ServiceConfig(name="trading-api", type="http", url="http://127.0.0.1:1/health")
    health = {"service": "trading-api", "status": new, "latency_ms": 12.5,
              "last_check": "2026-01-01T00:00:00Z", "metadata": {"probe": {"reason": "timeout"}}}
    return HealthEvent(service, health, old, new, ProbeResult(success=False, duration_s=0.01, reason="timeout"))


async def test_status_listener_records_changes_only(audit, tmp_path):
    own = SidecarEvents(audit)
    own.status_listener(_event("unknown", "healthy"))  # a new service found healthy: no record
    own.status_listener(_event("unknown", "unhealthy"))  # the first trouble seen: recorded
    own.status_listener(_event("healthy", "healthy"))
    own.status_listener(_event("healthy", "unhealthy"))  # before start: kept until start
    own.status_listener(_event("unhealthy", "unknown"))  # removed from the config: no record
    await own.start()
    own.status_listener(_event("unhealthy", "degraded"))
    await own.close()  # waits for the hook queue
    await audit.close()
    async with AuditLogger.from_settings(settings(tmp_path)) as reader:
        trail = await reader.get_audit_trail(event_type="SERVICE_STATUS_CHANGED")
    changes = [(e["data"]["old_status"], e["data"]["new_status"]) for e in trail["events"]]
    assert changes == [("unhealthy", "degraded"), ("healthy", "unhealthy"), ("unknown", "unhealthy")]
    assert trail["events"][0]["data"]["reason"] == "timeout"
    assert trail["events"][0]["actor"] == "usdcop-exporter"


async def test_config_change_carries_hash_and_names_only(audit):
    ev = await SidecarEvents(audit).record_config_change("ab" * 32, ["b", "a"], [], ["c"])
    assert ev["event_type"] == "CONFIG_CHANGED"
    assert ev["data"] == {"what": "services", "sha256": "ab" * 32, "added": ["a", "b"],
                          "removed": [], "changed": ["c"]}


async def test_service_checkpoints_and_verification_set_their_gauges(tmp_path, registry):
    service = AuditService(settings(tmp_path, audit_checkpoint_events=3), registry)
    await service.start()
    try:
        for i in range(4):
            await service.own.log_event("TRADING_RESUMED", data={"i": i})
        cp = await service.checkpointer.maybe()
        assert cp["sequence"] == 4 and cp["count"] == 4 and cp["signature"]
        assert (tmp_path / "checkpoints" / "checkpoint-00000000000000000004.json").exists()
        result = await service.verify()
        assert result["ok"] and result["checkpoint"]["sequence"] == 4
        assert result["mode"] == "incremental" and result["trusted"]["through"] == 4
        both = await asyncio.gather(service.verify(full=True), service.verify())
        assert [r["mode"] for r in both] == ["full", "full"]  # the request joined the full run
        assert both[0] is both[1] and both[0]["checked"] == 4
        assert registry.get_sample_value("usdcop_audit_last_verify_ok") == 1
        assert registry.get_sample_value("usdcop_audit_head_sequence") == 4
        assert registry.get_sample_value("usdcop_audit_last_checkpoint_timestamp_seconds") > 0
        assert registry.get_sample_value("usdcop_postgres_up") is None  # embedded mode
        await service.own.log_event("TRADING_RESUMED")
    finally:
        await service.close()
    # A last checkpoint at shutdown covers the event written after the previous one.
    assert (tmp_path / "checkpoints" / "checkpoint-00000000000000000005.json").exists()


async def test_only_a_full_run_can_say_the_chain_is_whole(tmp_path, registry):
    """usdcop_audit_last_verify_ok: a reader's incremental run (which trusts the range a
    signed checkpoint vouches for) cannot clear a break that a full run found."""
    service = AuditService(settings(tmp_path, audit_checkpoint_events=3), registry)
    await service.start()
    try:
        for i in range(6):
            await service.own.log_event("TRADING_RESUMED", data={"i": i})
        await service.checkpointer.maybe()
        assert (await service.verify(full=True))["ok"]
        assert registry.get_sample_value("usdcop_audit_last_verify_ok") == 1
        Tamper(service.store).set_actor(2, "mallory")  # inside the checkpointed range
        assert not (await service.verify(full=True))["ok"]
        assert registry.get_sample_value("usdcop_audit_last_verify_ok") == 0
        incremental = await service.verify()
        assert incremental["mode"] == "incremental" and incremental["ok"]
        assert registry.get_sample_value("usdcop_audit_last_verify_ok") == 0
    finally:
        await service.close()


@pytest.mark.parametrize("event_type", ["AUDIT_PURGED", "CONFIG_CHANGED", "SERVICE_STATUS_CHANGED",
                                        "TRADING_HALTED", "TRADING_RESUMED",
                                        "RISK_LIMIT_BREACHED"])
async def test_the_library_refuses_reserved_types_and_the_sidecar_path_writes_them(audit,
                                                                                  event_type):
    from exporter.audit.events import parse_event
    with pytest.raises(AuditValidationError, match="written by the sidecar") as info:
        await audit.log_event(event_type, data={"through_sequence": 5})
    assert info.value.field == "event_type"
    validated = parse_event({"event_type": event_type}, now=datetime.now(UTC), reserved=True)
    with pytest.raises(AuditValidationError) as info:
        await audit.submit([validated])  # validated elsewhere: still refused
    assert info.value.field == "event_type"
    assert (await audit.get_audit_trail())["events"] == []
    stored = await SidecarEvents(audit).log_event(event_type, data={"i": 1})
    assert stored["event_type"] == event_type and stored["sequence"] == 1


async def test_the_reserved_helpers_keep_their_names_and_refuse(audit):
    with pytest.raises(AuditValidationError) as info:
        await audit.log_risk_limit_breached({"limit": "max_drawdown", "value": 1})
    assert info.value.field == "event_type"
    with pytest.raises(AuditValidationError) as info:
        await audit.log_config_changed({"what": "model", "old": 1, "new": 2})
    assert info.value.field == "event_type"
