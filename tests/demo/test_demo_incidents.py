"""The demo's scripted desk incidents against a real in-process sidecar with a desk."""

from __future__ import annotations

import aiohttp
import pytest
import yaml

from exporter.demo.config import desk_section
from exporter.demo.engine import DemoEngine
from exporter.demo.incidents import ACTOR, PHANTOM_SYMBOL, SCHEDULE, Incidents
from exporter.demo.runner import app_parts, embedded_sidecar
from exporter.desk.halt import HALT_KEY
from exporter.settings import Settings
from tests.support.clock import FakeClock


@pytest.fixture
async def sidecar(tmp_path):
    """An embedded sidecar (in-memory cache, SQLite audit) with the demo's desk section."""
    config = tmp_path / "services.yaml"
    config.write_text(yaml.safe_dump({"services": [],
                                      "desk": desk_section(("USDCOP", "EURCOP"), 1.0, 1.0)}))
    settings = Settings(config=str(config), listen_host="127.0.0.1", listen_port=0,
                        audit_sqlite_path=str(tmp_path / "a.sqlite3"),
                        audit_spool_dir=str(tmp_path / "spool"),
                        audit_checkpoint_dir=str(tmp_path / "checkpoints"))
    async with embedded_sidecar(settings) as (app, base):
        yield app, base


async def _halt(base: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(base + "/api/trading/halt") as r:
        return await r.json()


async def test_the_cycle_halts_resumes_and_plants_a_phantom_position(sidecar):
    app, base = sidecar
    parts = app_parts(app)
    engine = DemoEngine(parts, seed=4)
    clock = FakeClock()
    incidents = Incidents(engine, base, cycle=150.0, clock=clock)  # steps at 10, 40, 50, 120 s
    try:
        assert await incidents.step() == []
        clock.now += 10
        assert await incidents.step() == ["halt"]
        assert (await _halt(base))["reason"] == "risk_limit"
        # The engine honours the kill switch: signals still, orders none.
        trades = engine.book.trades
        for _ in range(5):
            summary = await engine.tick()
            assert summary["signals"]
        assert engine.halted and engine.book.trades == trades
        clock.now += 40
        assert await incidents.step() == ["resume", "open_phantom"]
        assert (await _halt(base))["halted"] is False
        assert (await parts.metrics.get_position(PHANTOM_SYMBOL))["quantity"] == 250_000
        await engine.tick()
        assert not engine.halted
        clock.now += 70
        assert await incidents.step() == ["clear_phantom"]
        assert await parts.metrics.get_position(PHANTOM_SYMBOL) is None
        clock.now += 40  # the next cycle: its halt at 150 + 10 s
        assert await incidents.step() == ["halt"]
    finally:
        await incidents.close()
    # Closing lifted the halt it had set; both are in the audit trail, by the demo's desk.
    assert (await _halt(base))["halted"] is False
    trail = await parts.audit.get_audit_trail(limit=100)
    desk_events = [(e["event_type"], e["actor"]) for e in trail["events"]
                   if e["event_type"].startswith("TRADING_")]
    assert desk_events == [("TRADING_RESUMED", ACTOR), ("TRADING_HALTED", ACTOR)] * 2


async def test_close_undoes_the_phantom_and_can_keep_a_halt(sidecar):
    app, base = sidecar
    engine = DemoEngine(app_parts(app), seed=4)
    incidents = Incidents(engine, base)
    await incidents.open_phantom()
    await incidents.close()
    assert await engine.parts.metrics.get_position(PHANTOM_SYMBOL) is None
    kept = Incidents(engine, base)
    assert await kept.halt()
    await kept.close(undo=False)
    assert await engine.parts.signals.client.exists(HALT_KEY)


async def test_a_sidecar_that_refuses_is_logged_not_fatal(sidecar):
    app, base = sidecar
    incidents = Incidents(DemoEngine(app_parts(app)), base + "/nowhere")
    try:
        assert await incidents.halt() is False
        assert await incidents.resume() is False
    finally:
        await incidents.close()


def test_the_schedule_is_in_order_within_one_cycle():
    times = [at for at, _ in SCHEDULE]
    assert times == sorted(times) and 0 < times[0] and times[-1] < 1
    with pytest.raises(ValueError, match="cycle"):
        Incidents(None, "http://127.0.0.1:9", cycle=0)  # type: ignore[arg-type]
