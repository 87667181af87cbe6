"""The audit routes inside the whole sidecar (create_app), on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from exporter.app import create_app
from exporter.settings import load_settings

PATH = "/api/audit/signals"
ADMIN = {"Authorization": "Bearer admin-token-0123456789"}
WRITER = {"Authorization": "Bearer writer-token-0123456789"}


class Target:
    """A probed service whose health the test flips."""

    def __init__(self) -> None:
        self.status = 200

    async def handle(self, request):
        word = "healthy" if self.status == 200 else "unhealthy"
        return web.json_response({"status": word}, status=self.status)


@pytest.fixture
async def target(aiohttp_server):
    t = Target()
    app = web.Application()
    app.router.add_get("/health", t.handle)
    t.server = await aiohttp_server(app, host="127.0.0.1")
    return t


@pytest.fixture(params=["sqlite", "postgres"])
def postgres_url(request) -> str | None:
    """None (embedded SQLite) or a fresh database; set up before, torn down after, the app."""
    return request.getfixturevalue("pg_dsn") if request.param == "postgres" else None


@pytest.fixture
async def sidecar(postgres_url, aiohttp_client, tmp_path, registry, target):
    services = tmp_path / "services.yaml"
    services.write_text(f"services:\n  - name: trading-api\n"
                        f"    url: http://127.0.0.1:{target.server.port}/health\n")
    env = {"EXPORTER_CONFIG": str(services), "EXPORTER_SCHEDULER": "off",
           "EXPORTER_ADMIN_TOKEN": ADMIN["Authorization"].split()[1],
           "EXPORTER_API_TOKEN": WRITER["Authorization"].split()[1],
           "AUDIT_SQLITE_PATH": str(tmp_path / "audit.sqlite3"),
           "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
           "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
           "AUDIT_CHECKPOINT_KEY": "0123456789abcdef0123456789abcdef"}
    if postgres_url:
        env["POSTGRES_URL"] = postgres_url
    client = await aiohttp_client(create_app(load_settings(env), registry), headers=WRITER)
    client.kind = "postgres" if postgres_url else "sqlite"
    client.services = services
    return client


def signal_event(**fields):
    obj = {"event_type": "SIGNAL_GENERATED", "symbol": "USDCOP",
           "data": {"signal_id": "sig_1", "action": "BUY", "confidence": 0.85, "price": 4250.5}}
    obj.update(fields)
    return obj


async def until(fn, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := await fn()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def test_post_201_then_200_same_then_409_changed(sidecar):
    eid = str(uuid.uuid4())
    first = await sidecar.post(PATH, json=signal_event(event_id=eid))
    assert first.status == 201
    stored = await first.json()
    assert stored["sequence"] == 1 and len(stored["hash"]) == 64 and stored["event_id"] == eid
    assert stored["prev_hash"] == "0" * 64 and stored["symbol"] == "USDCOP"
    again = await sidecar.post(PATH, json=signal_event(event_id=eid))
    assert again.status == 200
    assert await again.json() == stored
    changed = await sidecar.post(PATH, json=signal_event(event_id=eid, actor="someone"))
    assert changed.status == 409
    body = await changed.json()
    assert body["error"] == "conflict" and body["field"] == "event_id"
    listed = await (await sidecar.get(PATH)).json()
    assert [e["sequence"] for e in listed["events"]] == [1] and listed["next_cursor"] is None


async def test_batch_is_all_or_nothing(sidecar):
    events = [signal_event(data={"signal_id": f"s{i}"}) for i in range(5)]
    resp = await sidecar.post(PATH, json={"events": events})
    assert resp.status == 201
    body = await resp.json()
    assert [e["sequence"] for e in body["events"]] == [1, 2, 3, 4, 5]
    assert body["summary"] == {"stored": 5, "duplicate": 0, "spooled": 0}
    eid = str(uuid.uuid4())
    clash = [signal_event(event_id=eid), signal_event(), signal_event(event_id=eid, actor="x")]
    resp = await sidecar.post(PATH, json={"events": clash})
    assert resp.status == 409
    assert (await resp.json())["field"] == "events[2].event_id"
    bad = [signal_event(), signal_event(), signal_event(timestamp="yesterday")]
    resp = await sidecar.post(PATH, json={"events": bad})
    assert resp.status == 422
    assert (await resp.json())["field"] == "events[2].timestamp"
    listed = await (await sidecar.get(PATH, params={"limit": "1000"})).json()
    assert len(listed["events"]) == 5  # neither refused batch left anything behind
    again = await sidecar.post(PATH, json={"events": [e | {"event_id": v["event_id"]}
                                                      for e, v in zip(events, body["events"],
                                                                      strict=True)]})
    assert again.status == 200
    assert (await again.json())["summary"]["duplicate"] == 5


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"event_type": "x"}, 422, "event_type"),
    ({"event_type": "SIGNAL_GENERATED", "bogus": 1}, 422, "bogus"),
    ({"event_type": "SIGNAL_GENERATED", "data": {"blob": "x" * 70000}}, 413, "data"),
    ({"event_type": "SIGNAL_GENERATED", "timestamp": "2020-01-01T00:00:00Z"}, 422, "timestamp"),
    ({"events": []}, 422, "events"),
    ({"events": [{"event_type": "SIGNAL_GENERATED"}] * 1001}, 413, "events"),
    ({"events": "no"}, 422, "events"),
    ({"events": [], "extra": 1}, 422, "extra"),
])
async def test_bad_events_are_refused_naming_the_field(sidecar, body, status, field):
    resp = await sidecar.post(PATH, json=body)
    assert resp.status == status
    assert (await resp.json())["field"] == field
    assert (await (await sidecar.get(PATH)).json())["events"] == []


async def test_bad_bodies(sidecar):
    resp = await sidecar.post(PATH, data=b'{"event_type": "X_Y"}',
                              headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await sidecar.post(PATH, data=b'{"event_type": NaN}',
                              headers={"Content-Type": "application/json"})
    assert resp.status == 400
    resp = await sidecar.post(PATH, data=b'{"event_type": "X_Y", "event_type": "Y_Z"}',
                              headers={"Content-Type": "application/json"})
    assert resp.status == 400


@pytest.mark.parametrize(("params", "field"), [
    ({"bogus": "1"}, "bogus"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"), ({"cursor": "garbage"}, "cursor"),
    ({"startTime": "2025-01-01"}, "startTime"), ({"eventType": "lower"}, "eventType"),
    ({"symbol": "usd"}, "symbol"), ({"symbol": ""}, "symbol"), ({"limit": ""}, "limit"),
    ({"startTime": "2025-01-01T00:00:60Z"}, "startTime"),
])
async def test_bad_queries_are_400_naming_the_parameter(sidecar, params, field):
    resp = await sidecar.get(PATH, params=params)
    assert resp.status == 400
    assert (await resp.json())["field"] == field


async def test_query_filters_and_cursor(sidecar):
    base = datetime.now(UTC) - timedelta(hours=1)
    events = [signal_event(event_type="TRADE_EXECUTED" if i % 2 else "SIGNAL_GENERATED",
                           timestamp=(base + timedelta(minutes=i)).isoformat(),
                           data={"i": i}) for i in range(12)]
    assert (await sidecar.post(PATH, json={"events": events})).status == 201
    seen, cursor = [], None
    while True:
        params = {"limit": "5", "eventType": "TRADE_EXECUTED"}
        if cursor:
            params["cursor"] = cursor
        page = await (await sidecar.get(PATH, params=params)).json()
        seen += [e["data"]["i"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [11, 9, 7, 5, 3, 1]
    window = await (await sidecar.get(PATH, params={
        "startTime": (base + timedelta(minutes=2)).isoformat(),
        "endTime": (base + timedelta(minutes=4)).isoformat()})).json()
    assert [e["data"]["i"] for e in window["events"]] == [3, 2]


async def test_verify_route(sidecar):
    await sidecar.post(PATH, json={"events": [signal_event() for _ in range(3)]})
    resp = await sidecar.get("/api/audit/verify")
    assert resp.status == 200
    body = await resp.json()
    assert body["ok"] and body["checked"] == 3 and body["head_sequence"] == 3
    assert body["first_broken"] is None
    assert (await sidecar.get("/api/audit/verify", params={"x": "1"})).status == 400


async def test_purge_is_admin_only_and_never_purges_recent_events(sidecar):
    await sidecar.post(PATH, json=signal_event())
    assert (await sidecar.delete(PATH)).status == 403  # the write token is not enough
    resp = await sidecar.delete(PATH, headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == {"purged": 0, "through_sequence": None}
    assert len((await (await sidecar.get(PATH)).json())["events"]) == 1


async def test_status_change_and_reload_become_events(sidecar, target):
    probe = {"service": "trading-api"}
    assert (await sidecar.post("/api/health/services", json=probe)).status == 200  # unknown→healthy
    target.status = 503
    assert (await (await sidecar.post("/api/health/services", json=probe)).json())["status"] \
        == "unhealthy"

    async def changes():
        page = await (await sidecar.get(PATH, params={"eventType": "SERVICE_STATUS_CHANGED"})).json()
        return page["events"]

    [change] = await until(changes, what="SERVICE_STATUS_CHANGED")
    assert change["data"]["service"] == "trading-api"
    assert (change["data"]["old_status"], change["data"]["new_status"]) == ("healthy", "unhealthy")
    assert change["data"]["reason"] == "status"
    text = sidecar.services.read_text() + (
        f"  - name: ml-analytics\n    url: http://127.0.0.1:{target.server.port}/health\n")
    sidecar.services.write_text(text)
    assert (await sidecar.post("/-/reload")).status == 200

    async def configs():
        page = await (await sidecar.get(PATH, params={"eventType": "CONFIG_CHANGED"})).json()
        return page["events"]

    [config] = await until(configs, what="CONFIG_CHANGED")
    import hashlib
    assert config["data"] == {"what": "services", "sha256": hashlib.sha256(text.encode()).hexdigest(),
                              "added": ["ml-analytics"], "removed": [], "changed": []}


async def test_metrics_and_readiness(sidecar):
    await sidecar.post(PATH, json=signal_event())
    text = await (await sidecar.get("/metrics")).text()
    assert 'usdcop_audit_events_total{event_type="SIGNAL_GENERATED",outcome="stored"} 1.0' in text
    assert "usdcop_audit_write_duration_seconds_bucket" in text
    assert "usdcop_audit_spool_events 0.0" in text
    if sidecar.kind == "postgres":
        assert "usdcop_postgres_up 1.0" in text
    else:
        assert "usdcop_postgres_up" not in text
    ready = await (await sidecar.get("/readyz")).json()
    assert ready["components"]["audit"] is True
    if sidecar.kind == "postgres":
        assert ready["dependencies"]["postgres"]["up"] is True


async def test_library_and_api_share_the_contract(sidecar):
    from exporter.api.audit import AUDIT
    audit = sidecar.app[AUDIT].logger
    ev = await audit.log_signal_generated({"signal_id": "sig_9", "symbol": "USDCOP",
                                           "action": "SELL", "confidence": 0.6, "price": 4100.0})
    assert ev["sequence"] == 1 and ev["symbol"] == "USDCOP" and "symbol" not in ev["data"]
    trail = await audit.get_audit_trail(event_type="SIGNAL_GENERATED", limit=10)
    assert trail["events"][0]["data"]["signal_id"] == "sig_9"
    via_api = await (await sidecar.get(PATH)).json()
    assert via_api["events"] == json.loads(json.dumps(trail["events"]))


async def test_outage_through_the_api(aiohttp_client, tmp_path, registry, private_pg):
    if not private_pg.running():
        private_pg.start()
    dsn = private_pg.create_database("api_" + uuid.uuid4().hex[:8])
    services = tmp_path / "services.yaml"
    services.write_text("services: []\n")
    env = {"EXPORTER_CONFIG": str(services), "EXPORTER_SCHEDULER": "off", "POSTGRES_URL": dsn,
           "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
           "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
    client = await aiohttp_client(create_app(load_settings(env), registry))
    assert (await client.post(PATH, json=signal_event())).status == 201
    private_pg.stop()
    try:
        resp = await client.post(PATH, json=signal_event(data={"signal_id": "during"}))
        assert resp.status == 202
        spooled = await resp.json()
        assert spooled["sequence"] is None and spooled["hash"] is None
        assert spooled["accepted_at"] and spooled["received_at"] is None
        for route in (PATH, "/api/audit/verify"):
            resp = await client.get(route)
            assert resp.status == 503 and resp.headers["Retry-After"]
        ready = await client.get("/readyz")
        assert ready.status == 200  # an outage shows in the body, never fails readiness
        body = await ready.json()
        assert body["dependencies"]["postgres"] == {"up": False, "spool_events": 1}
    finally:
        private_pg.start()

    async def drained():
        resp = await client.get(PATH)
        if resp.status != 200:
            return None
        events = (await resp.json())["events"]
        return events if len(events) == 2 else None

    events = await until(drained, timeout=30, what="the spool to drain")
    assert events[0]["event_id"] == spooled["event_id"] and events[0]["sequence"] == 2
    assert (await (await client.get("/api/audit/verify")).json())["ok"]


RESERVED = ["AUDIT_PURGED", "CONFIG_CHANGED", "SERVICE_STATUS_CHANGED", "TRADING_HALTED",
            "TRADING_RESUMED", "RISK_LIMIT_BREACHED"]


@pytest.mark.parametrize("event_type", RESERVED)
async def test_reserved_event_types_are_refused_naming_the_field(sidecar, event_type):
    resp = await sidecar.post(PATH, json=signal_event(event_type=event_type))
    assert resp.status == 422
    body = await resp.json()
    assert body["field"] == "event_type" and event_type in body["detail"]
    resp = await sidecar.post(PATH, json={"events": [signal_event(),
                                                     signal_event(event_type=event_type)]})
    assert resp.status == 422
    assert (await resp.json())["field"] == "events[1].event_type"
    assert (await (await sidecar.get(PATH)).json())["events"] == []


async def test_a_purge_posted_with_the_write_token_cannot_cover_a_deleted_prefix(sidecar):
    from exporter.api.audit import AUDIT

    from .conftest import Tamper
    resp = await sidecar.post(PATH, json={"events": [signal_event() for _ in range(6)]})
    head = (await resp.json())["events"][3]
    forged = {"event_type": "AUDIT_PURGED", "actor": "usdcop-exporter", "data": {
        "from_sequence": 1, "through_sequence": 4, "through_hash": head["hash"], "purged": 4,
        "horizon": (datetime.now(UTC) - timedelta(days=30)).isoformat(), "partitions": []}}
    resp = await sidecar.post(PATH, json=forged)
    assert resp.status == 422 and (await resp.json())["field"] == "event_type"
    store = sidecar.app[AUDIT].store
    statements = [("DELETE FROM {events} WHERE sequence <= %s", (4,))]
    if sidecar.kind == "postgres":
        statements.append(("DELETE FROM usdcop_audit.event_ids WHERE sequence <= %s", (4,)))
    Tamper(store).run(*statements)
    for params in ({}, {"full": "true"}):
        body = await (await sidecar.get("/api/audit/verify", params=params)).json()
        assert not body["ok"] and body["status"] == "broken"
        assert body["first_broken"]["reason"] == "sequence_gap"
        assert body["first_broken"]["sequence"] == 5


async def test_verify_says_which_range_it_checked(sidecar):
    from exporter.api.audit import AUDIT
    await sidecar.post(PATH, json={"events": [signal_event() for _ in range(4)]})
    await sidecar.app[AUDIT].checkpointer.maybe(force=True)
    await sidecar.post(PATH, json={"events": [signal_event() for _ in range(2)]})
    body = await (await sidecar.get("/api/audit/verify")).json()
    assert body["ok"] and body["status"] == "ok" and body["mode"] == "incremental"
    assert body["trusted"] == {"from": 1, "through": 4, "checkpoint": "directory"}
    assert body["range"] == {"from": 5, "through": 6} and body["checked"] == 2
    body = await (await sidecar.get("/api/audit/verify", params={"full": "true"})).json()
    assert body["mode"] == "full" and body["range"] == {"from": 1, "through": 6}
    assert body["trusted"] is None and body["checked"] == 6
    resp = await sidecar.get("/api/audit/verify", params={"full": "yes"})
    assert resp.status == 400 and (await resp.json())["field"] == "full"
