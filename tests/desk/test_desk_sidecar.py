"""The desk inside the whole sidecar: calendar metrics, reload, a breach recorded once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from exporter.api.desk import DESK
from exporter.cache.trading_metrics import MetricsCache
from exporter.desk.calendar import TradingCalendar

WEEK = ", ".join(f'{day}: ["00:00-24:00"]' for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


def value(samples: list, name: str, **labels) -> float | None:
    """The value of the first sample called `name` carrying `labels`."""
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


async def metrics(client) -> list:
    """Every sample of a /metrics scrape, read with prometheus_client's own parser."""
    text = await (await client.get("/metrics")).text()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


async def test_market_metrics_follow_the_configured_calendar(sidecar):
    client = await sidecar()  # no desk: section: Bogotá, Monday to Friday 08:00-13:00
    before = time.time()
    scraped = await metrics(client)
    after = time.time()
    calendar = TradingCalendar()
    assert value(scraped, "usdcop_market_open") in {float(calendar.is_open(before)), float(calendar.is_open(after))}
    assert value(scraped, "usdcop_market_next_open_timestamp_seconds") in {
        calendar.next_open(before), calendar.next_open(after)}
    assert value(scraped, "usdcop_market_next_close_timestamp_seconds") in {
        calendar.next_close(before), calendar.next_close(after)}
    assert value(scraped, "usdcop_clock_tolerance_seconds") == 2.0
    assert value(scraped, "usdcop_audit_max_future_skew_seconds") == 300.0


async def test_a_reload_changes_the_calendar_at_once(sidecar, sidecar_env):
    client = await sidecar("services: []\ndesk: {sessions: {}}\n")  # never open
    scraped = await metrics(client)
    assert value(scraped, "usdcop_market_open") == 0.0
    assert value(scraped, "usdcop_market_next_open_timestamp_seconds") is None
    path = sidecar_env("services: []\n")["EXPORTER_CONFIG"]
    with open(path, "w") as fh:
        fh.write(f"services: []\ndesk: {{sessions: {{{WEEK}}}, clock_tolerance: 1s}}\n")
    assert (await client.post("/-/reload")).status == 200
    scraped = await metrics(client)
    assert value(scraped, "usdcop_market_open") == 1.0
    assert value(scraped, "usdcop_clock_tolerance_seconds") == 1.0
    with open(path, "w") as fh:
        fh.write("services: []\ndesk: {sessions: {mon: [\"13:00-08:00\"]}}\n")
    refused = await client.post("/-/reload")
    assert refused.status == 400 and (await refused.json())["field"] == "desk.sessions.mon[0]"
    assert value(await metrics(client), "usdcop_market_open") == 1.0  # the running config stays


async def test_a_breach_in_redis_is_recorded_once_by_the_running_sidecar(sidecar):
    client = await sidecar(f"services: []\ndesk: {{sessions: {{{WEEK}}}, limits: {{max_drawdown: 0.1}}}}\n")
    desk = client.server.app[DESK]
    await MetricsCache(desk.mirror.client).set_financial_metrics(
        {"timestamp": datetime.now(UTC).isoformat(), "total_pnl": -50.0, "max_drawdown": -0.25})
    path = "/api/audit/signals?eventType=RISK_LIMIT_BREACHED"
    deadline = time.monotonic() + 10
    events = []
    while not events and time.monotonic() < deadline:
        events = (await (await client.get(path)).json())["events"]
    assert [e["data"] for e in events] == [
        {"limit": "max_drawdown", "value": 0.25, "threshold": 0.1, "utilization": 2.5}]
    seen = desk.mirror.snapshot.last_success
    for _ in range(3):  # three more mirror cycles, each followed by risk steps
        deadline = time.monotonic() + 10
        while desk.mirror.snapshot.last_success == seen and time.monotonic() < deadline:
            await client.get("/healthz")
        seen = desk.mirror.snapshot.last_success
    await desk.risk.step()
    assert len((await (await client.get(path)).json())["events"]) == 1
    scraped = await metrics(client)
    assert value(scraped, "usdcop_risk_limit_utilization", limit="max_drawdown") == 2.5
    assert value(scraped, "usdcop_risk_limit_breaches_total", limit="max_drawdown") == 1.0
