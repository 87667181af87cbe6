"""The kill switch: the Redis key, the routes' auth and validation, and their audit events."""

from __future__ import annotations

import json
import time

import pytest
import redis.asyncio as aioredis

from exporter.audit.errors import AuditUnavailable
from exporter.audit.own import SidecarEvents
from exporter.desk.halt import HALT_KEY, HaltConflict, HaltSwitch, iso_utc
from tests.conftest import REDIS_TEST_URL
from tests.desk.conftest import WRITER
from tests.support.clock import FakeClock

PATH = "/api/trading/halt"
JSON = {"Content-Type": "application/json"}


async def raw_redis(namespace: str):
    client = aioredis.from_url(REDIS_TEST_URL)
    return client, f"{namespace}:{HALT_KEY}"


async def test_halt_writes_the_key_and_an_audit_event_then_resume_removes_it(
        redis_client, redis_namespace, audit_logger):
    clock = FakeClock(float(int(time.time())))  # the audit trail refuses times outside its horizon
    when = iso_utc(clock.now)
    switch = HaltSwitch(redis_client, audit=SidecarEvents(audit_logger), clock=clock)
    halt, created, event = await switch.halt("incident", "ana", "feed frozen")
    assert created and halt.when == when and when.endswith(".000000Z")
    assert event["event_type"] == "TRADING_HALTED" and event["actor"] == "ana"
    assert event["data"] == {"reason": "incident", "note": "feed frozen"}
    assert event["timestamp"] == halt.when
    raw, key = await raw_redis(redis_namespace)
    try:
        stored = json.loads(await raw.get(key))
        assert stored == {"reason": "incident", "actor": "ana", "note": "feed frozen", "when": when}
        assert await raw.ttl(key) == -1  # never expires
        # The same halt again changes nothing; another reason is a conflict.
        again, created, event = await switch.halt("incident", "bob")
        assert (again, created, event) == (halt, False, None)
        with pytest.raises(HaltConflict, match="already halted \\(incident, by ana"):
            await switch.halt("manual", "bob")
        clock.advance(60)
        previous, event = await switch.resume("bob", "feed back")
        assert previous == halt and await raw.exists(key) == 0
        assert event["event_type"] == "TRADING_RESUMED" and event["actor"] == "bob"
        assert event["data"] == {"reason": "incident", "halted_by": "ana", "halted_at": when,
                                 "note": "feed back"}
        assert await switch.resume("bob") == (None, None)  # not halted: nothing recorded
    finally:
        await raw.aclose()
    trail = await audit_logger.get_audit_trail()
    assert [e["event_type"] for e in trail["events"]] == ["TRADING_RESUMED", "TRADING_HALTED"]


class FailingAudit:
    """An audit sink that cannot record (the spool full, the store gone): the one failure
    the real logger cannot be driven into cheaply from a unit test."""

    async def log_event(self, *args, **kwargs):
        raise AuditUnavailable("audit spool full")


async def test_a_halt_stands_without_the_audit_trail_but_a_resume_waits_for_it(redis_client):
    switch = HaltSwitch(redis_client, audit=FailingAudit())
    halt, created, event = await switch.halt("manual", "ana")
    assert created and event is None  # reported unrecorded, but trading is halted
    assert (await switch.refresh()).halt == halt
    with pytest.raises(AuditUnavailable):
        await switch.resume("bob")
    assert (await switch.refresh()).halt == halt  # still halted: no resume without a record


async def test_the_view_follows_the_key_written_by_anyone(redis_client, redis_namespace):
    switch = HaltSwitch(redis_client)
    assert not (await switch.refresh()).halted
    raw, key = await raw_redis(redis_namespace)
    try:
        await raw.set(key, json.dumps({"reason": "risk_limit", "actor": "engine", "note": None,
                                       "when": "2025-03-03T15:00:00+00:00"}))
        view = await switch.refresh()
        assert view.halted and view.reason == "risk_limit" and view.halt.actor == "engine"
        await raw.set(key, b"stop!")  # garbage still tells the engine to stop
        view = await switch.refresh()
        assert view.halted and view.reason == "unknown" and "does not hold JSON" in view.unreadable
        await raw.set(key, json.dumps({"reason": "lunch", "actor": "x", "when": "2025-03-03T15:00:00Z"}))
        view = await switch.refresh()
        assert view.reason == "unknown" and "reason must be one of" in view.unreadable
    finally:
        await raw.aclose()


# -- the routes inside the real sidecar -----------------------------------------------


async def test_halt_routes_need_the_write_token_and_record_the_actor(sidecar, redis_namespace):
    client = await sidecar()
    body = {"actor": "ana", "reason": "incident", "note": "feed frozen"}
    anonymous = await client.post(PATH, json=body, headers={"Authorization": ""})
    assert anonymous.status == 401
    wrong = await client.post(PATH, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    assert (await client.get(PATH)).status == 200  # reading is open
    answer = await client.post(PATH, json=body)
    assert answer.status == 201
    halted = await answer.json()
    assert halted["halted"] and halted["actor"] == "ana" and halted["audit_recorded"] is True
    assert halted["store"] == "redis"
    assert halted["audit_event"]["event_type"] == "TRADING_HALTED"
    assert (await client.post(PATH, json=body)).status == 200  # a retry: the same halt
    conflict = await client.post(PATH, json={"actor": "bob", "reason": "manual"})
    assert conflict.status == 409 and (await conflict.json())["field"] == "reason"
    state = await (await client.get(PATH)).json()
    assert state == {"halted": True, "reason": "incident", "actor": "ana", "note": "feed frozen",
                     "when": halted["when"]}
    assert (await client.delete(PATH, json={"actor": "bob"}, headers={"Authorization": ""})).status == 401
    resumed = await client.delete(PATH, json={"actor": "bob", "note": "feed back"})
    assert resumed.status == 200
    answer = await resumed.json()
    assert answer["halted"] is False and answer["resumed"]["actor"] == "ana"
    assert answer["audit_event"]["event_type"] == "TRADING_RESUMED"
    trail = await (await client.get("/api/audit/signals?limit=10")).json()
    events = [(e["event_type"], e["actor"], e["data"]) for e in trail["events"]]
    assert events == [
        ("TRADING_RESUMED", "bob", {"reason": "incident", "halted_by": "ana",
                                    "halted_at": halted["when"], "note": "feed back"}),
        ("TRADING_HALTED", "ana", {"reason": "incident", "note": "feed frozen"}),
    ]
    again = await client.delete(PATH, json={"actor": "bob"})
    assert (await again.json())["resumed"] is None


BAD_BODIES = [
    ({}, 422, "actor"),
    ({"actor": ""}, 422, "actor"),
    ({"actor": "ana\nroot"}, 422, "actor"),
    ({"actor": 7}, 422, "actor"),
    ({"actor": "ana", "reason": "lunch"}, 422, "reason"),
    ({"actor": "ana", "why": "x"}, 422, "why"),
    ({"actor": "ana", "note": "x" * 1025}, 422, "note"),
    (["ana"], 422, None),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
async def test_bad_halt_requests_name_the_field_and_change_nothing(sidecar, body, status, field):
    client = await sidecar()
    answer = await client.post(PATH, json=body)
    assert answer.status == status
    error = await answer.json()
    assert error["field"] == field and error["error"] == "invalid"
    assert (await (await client.get(PATH)).json())["halted"] is False
    trail = await (await client.get("/api/audit/signals")).json()
    assert trail["events"] == []


async def test_malformed_halt_requests_are_refused_before_anything_happens(sidecar):
    client = await sidecar()
    text = await client.post(PATH, data=b'{"actor": "ana"}', headers={"Content-Type": "text/plain"})
    assert text.status == 415
    broken = await client.post(PATH, data=b'{"actor": "ana",', headers=JSON)
    assert broken.status == 400
    twice = await client.post(PATH, data=b'{"actor": "ana", "actor": "bob"}', headers=JSON)
    assert twice.status == 400 and (await twice.json())["field"] == "actor"
    query = await client.post(PATH + "?force=1", json={"actor": "ana"})
    assert query.status == 400 and (await query.json())["field"] == "force"
    resume = await client.delete(PATH, json={"actor": "ana", "reason": "manual"})
    assert resume.status == 422 and (await resume.json())["field"] == "reason"
    assert (await (await client.get(PATH)).json())["halted"] is False


async def test_the_halt_is_mirrored_as_a_metric(sidecar):
    client = await sidecar()
    await client.post(PATH, json={"actor": "ana", "reason": "market_closed"})
    text = await (await client.get("/metrics")).text()
    assert 'usdcop_trading_halted{reason="market_closed"} 1.0' in text
    assert 'usdcop_trading_halted{reason="manual"} 0.0' in text
    assert "\nusdcop_trading_halted_timestamp_seconds " in text
    await client.delete(PATH, json={"actor": "ana"})
    text = await (await client.get("/metrics")).text()
    assert 'usdcop_trading_halted{reason="market_closed"} 0.0' in text
    assert "\nusdcop_trading_halted_timestamp_seconds " not in text


async def test_routes_are_in_the_route_table_with_their_levels(sidecar):
    client = await sidecar()
    document = await (await client.get("/api/openapi.json")).json()
    levels = {(p, m.upper()): op["x-auth-level"] for p, ops in document["paths"].items()
              for m, op in ops.items()}
    assert levels[(PATH, "GET")] == "read"
    assert levels[(PATH, "POST")] == "write" and levels[(PATH, "DELETE")] == "write"
    assert levels[("/api/desk/reconciliation", "GET")] == "read"
    assert WRITER  # the write token the fixture configures
