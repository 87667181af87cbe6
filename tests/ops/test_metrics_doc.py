"""docs/metrics.md is the one list of metric families: checked against a live sidecar.

A sidecar on Redis and Postgres, with a TLS service, trading state, a latency record, audit
events, a verification, a checkpoint, a halted desk and a reconciliation run, exposes every
family it has; each must be in the table with its type and labels, and each row of the
table must be exposed.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import create_app
from exporter.cache.client import RedisClient
from exporter.cache.trading_metrics import MetricsCache
from exporter.settings import load_settings
from tests.cache.helpers import make_signal
from tests.ops.metric_docs import documented_families
from tests.support.docs import DOC_FILES
from tests.support.targets import start_targets

WRITER = {"Authorization": "Bearer writer-token-0123456789"}
WEEK = ", ".join(f'{d}: ["00:00-24:00"]' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


def services_yaml(t) -> str:
    return (
        "services:\n"
        "  - name: api\n"
        f"    url: {t.tls_url('/healthy')}\n"
        f"    tls: {{ca_file: {t.ca_file}}}\n"
        "    during: session\n"
        "    labels: {team: desk}\n"
        "  - name: gateway\n"
        "    type: icmp\n"
        "    host: 127.0.0.1\n"
        "    count: 1\n"
        f"desk: {{sessions: {{{WEEK}}}, freshness: {{signal_cadence: {{USDCOP: 5m}}, "
        "financial_metrics_cadence: 1m},\n"
        "       limits: {max_drawdown: 0.1, daily_loss: 1000, max_position: {'*': 10},\n"
        "                max_open_positions: 3, min_win_ratio: 0.4, min_trades: 1}}\n"
    )


def observed(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name → (type, label names) of every family in an exposition, counters with `_total`."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    families = list(text_string_to_metric_families(text))
    timed = {f.name for f in families if f.type in ("counter", "histogram")}
    for family in families:
        if family.name.endswith("_created") and family.name[:-8] in timed:
            continue  # the creation time prometheus-client writes next to each one
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        out[name] = (family.type, frozenset(labels))
    return out


async def until(predicate, what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not await predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def scrape(client) -> dict[str, tuple[str, frozenset[str]]]:
    return observed(await (await client.get("/metrics")).text())


async def full_sidecar(aiohttp_client, registry, tmp_path, redis_url, namespace, pg_dsn, t):
    """A sidecar on Redis and Postgres with trading state, a probed TLS service, a latency
    record, an audit event, a verification and a halted desk."""
    path = tmp_path / "services.yaml"
    path.write_text(services_yaml(t))
    now = datetime.now(UTC).isoformat()
    redis = RedisClient(namespace=namespace, url=redis_url)
    cache = MetricsCache(redis)
    try:  # before start-up, so the mirror's first key scan finds the custom metric
        await cache.set_financial_metrics({
            "timestamp": now, "total_pnl": -5000.0, "max_drawdown": -0.2, "win_rate": 0.5,
            "total_trades": 4, "active_positions": 1, "sharpe_ratio": 1.1,
            "portfolio_value": 1e6})
        await cache.set_position({"position_id": "p1", "symbol": "USDCOP", "side": "LONG",
                                  "quantity": 20.0, "entry_price": 4000.0, "entry_time": now,
                                  "unrealized_pnl": 1.0})
        await cache.set_custom_metric("queue_depth", 3)
    finally:
        await redis.close()
    settings = load_settings({
        "EXPORTER_CONFIG": str(path), "EXPORTER_SCHEDULER": "off",
        "EXPORTER_API_TOKEN": WRITER["Authorization"].split()[1],
        "REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace, "MIRROR_INTERVAL": "100ms",
        "POSTGRES_URL": pg_dsn, "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
        "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"), "AUDIT_CHECKPOINT_EVERY": "1",
    })
    client = await aiohttp_client(create_app(settings, registry), headers=WRITER)
    assert (await client.post("/api/health/services", json={"service": "api"})).status == 200
    assert (await client.post("/api/health/services", json={"service": "gateway"})).status == 200
    assert (await client.post("/api/cache/signals", json=make_signal())).status == 201
    record = {"service": "engine", "operation": "fill", "latency_ms": 12, "success": False}
    assert (await client.post("/api/health/latency", json=record)).status == 200
    event = {"event_type": "TRADE_EXECUTED", "symbol": "USDCOP",
             "data": {"trade_id": "t1", "signal_id": "nobody"}}
    assert (await client.post("/api/audit/signals", json=event)).status == 201
    assert (await client.get("/api/audit/verify?full=true")).status == 200
    halt = {"actor": "ops", "reason": "incident"}
    assert (await client.post("/api/trading/halt", json=halt)).status == 201
    return client


async def test_every_family_of_a_live_sidecar_is_in_docs_metrics_md(
    pg_dsn, redis_url, redis_namespace, tmp_path, aiohttp_client,
):  # the database and Redis first, so they outlive the sidecars that use them
    documented = documented_families()
    # Embedded (in-memory cache, SQLite): the families only that mode has.
    (tmp_path / "embedded").mkdir()
    embedded_yaml = tmp_path / "embedded" / "services.yaml"
    embedded_yaml.write_text("services: []\n")
    embedded = await aiohttp_client(create_app(load_settings({
        "EXPORTER_CONFIG": str(embedded_yaml), "EXPORTER_SCHEDULER": "off",
        "AUDIT_SQLITE_PATH": str(tmp_path / "embedded" / "audit.sqlite3"),
        "AUDIT_CHECKPOINT_DIR": str(tmp_path / "embedded" / "checkpoints"),
    }), CollectorRegistry(auto_describe=True)))
    seen = await scrape(embedded)

    async with start_targets() as t:
        client = await full_sidecar(aiohttp_client, CollectorRegistry(auto_describe=True),
                                    tmp_path, redis_url, redis_namespace, pg_dsn, t)

        async def settled() -> bool:
            return set(documented) <= set(seen) | set(await scrape(client))

        try:
            await until(settled, "every documented family", limit=10)
        except AssertionError:
            pass  # the comparison below names what is missing
        full = await scrape(client)

    for name, (kind, labels) in full.items():
        if name in seen:
            assert seen[name][0] == kind, f"{name}: {kind} with Redis, {seen[name][0]} without"
            labels |= seen[name][1]
        seen[name] = (kind, labels)
    missing = sorted(set(seen) - set(documented))
    assert not missing, f"exposed but not in docs/metrics.md: {missing}"
    absent = sorted(set(documented) - set(seen))
    assert not absent, f"in docs/metrics.md but not exposed: {absent}"
    for name, (kind, labels) in seen.items():
        doc = documented[name]
        assert kind == doc.type, f"{name}: exposed as {kind}, documented as {doc.type}"
        if doc.open_labels:
            assert doc.labels <= labels, f"{name}: labels {sorted(labels)}, documented {doc}"
        else:
            assert labels == doc.labels, f"{name}: labels {sorted(labels)}, documented {doc}"


# Names of the usdcop_ shape that are not families of /metrics: the series of a /probe
# answer, the audit schema and the database roles.
NOT_FAMILIES = {"usdcop_probe_status", "usdcop_probe_phase_duration_seconds", "usdcop_audit", "usdcop_audit_owner",
                "usdcop_audit_writer", "usdcop_grafana"}


def test_every_metric_the_docs_name_is_in_the_table():
    families = set(documented_families())
    unknown = []
    for path in DOC_FILES:
        for match in re.finditer(r"(?<![\w:])usdcop_[a-z0-9_]+", path.read_text(encoding="utf-8")):
            name = match.group(0)
            series_of = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in families | NOT_FAMILIES and series_of not in families:
                unknown.append(f"{path.name}: {name}")
    assert not unknown, f"not in docs/metrics.md: {unknown}"
