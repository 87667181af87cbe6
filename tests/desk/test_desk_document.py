"""The desk routes' OpenAPI document is true: live answers of the halt switch and the
reconciliation report match their response schemas, and the halt body schemas take exactly
the bodies the routes take."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import jsonschema_rs
import pytest
import redis.asyncio as aioredis

from exporter.api.audit import AUDIT
from exporter.api.desk import DESK
from exporter.cache.trading_metrics import MetricsCache
from exporter.desk.halt import HALT_KEY
from tests.conftest import REDIS_TEST_URL

HALT = "/api/trading/halt"
RECONCILIATION = "/api/desk/reconciliation"
SERVICES = "services: []\ndesk: {reconciliation: {stale_position_after: 1h, orphan_window: 1h}}\n"


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def document(client) -> dict:
    return await (await client.get("/api/openapi.json")).json()


def validator(doc: dict, schema: dict):
    """A validator resolving `#/...` references against the whole document."""
    return jsonschema_rs.validator_for({**schema, "paths": doc["paths"], "components": doc["components"]})


async def conforms(doc: dict, resp, path: str, method: str = "GET") -> dict:
    """The answer's body, after checking it against the documented schema of its status."""
    body = await resp.json()
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(resp.status) in responses, (method, path, resp.status, body)
    schema = responses[str(resp.status)]["content"]["application/json"]["schema"]
    errors = [e.message for e in validator(doc, schema).iter_errors(body)]
    assert not errors, (method, path, resp.status, body, errors)
    return body


async def test_halt_answers_match_the_document(sidecar, redis_namespace):
    client = await sidecar()
    doc = await document(client)
    assert (await conforms(doc, await client.get(HALT), HALT))["halted"] is False
    created = await client.post(HALT, json={"actor": "ana", "reason": "incident", "note": "feed"})
    assert created.status == 201
    await conforms(doc, created, HALT, "POST")
    again = await client.post(HALT, json={"actor": "ana", "reason": "incident"})
    assert again.status == 200
    await conforms(doc, again, HALT, "POST")
    conflict = await client.post(HALT, json={"actor": "bob", "reason": None})  # null: manual
    assert conflict.status == 409
    await conforms(doc, conflict, HALT, "POST")
    assert (await conforms(doc, await client.get(HALT), HALT))["reason"] == "incident"
    resumed = await conforms(doc, await client.delete(HALT, json={"actor": "bob", "note": None}),
                             HALT, "DELETE")
    assert resumed["resumed"]["actor"] == "ana"
    assert (await conforms(doc, await client.delete(HALT, json={"actor": "bob"}), HALT,
                           "DELETE"))["resumed"] is None
    raw = aioredis.from_url(REDIS_TEST_URL)
    try:
        await raw.set(f"{redis_namespace}:{HALT_KEY}", b"stop!")  # garbage still means halted
        unreadable = await conforms(doc, await client.get(HALT), HALT)
        assert unreadable["halted"] is True and unreadable["reason"] == "unknown"
        await raw.delete(f"{redis_namespace}:{HALT_KEY}")
    finally:
        await raw.aclose()


@pytest.mark.parametrize(
    ("method", "body", "status", "field"),
    [
        ("POST", {"actor": "ana"}, 201, None),
        ("POST", {"actor": "ana", "reason": None, "note": None}, 201, None),
        ("POST", {"actor": "ana", "reason": ""}, 422, "reason"),
        ("POST", {"actor": "ana", "note": ""}, 422, "note"),
        ("POST", {"actor": ""}, 422, "actor"),
        ("POST", {"actor": "ana\tbob"}, 422, "actor"),
        ("POST", {"actor": "ana\u0000"}, 400, None),
        ("POST", {"actor": "a" * 257}, 422, "actor"),
        ("DELETE", {"actor": "ana", "note": None}, 200, None),
        ("DELETE", {"actor": "ana", "note": "line\nbreak"}, 422, "note"),
        ("DELETE", {"actor": None}, 422, "actor"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v),
)
async def test_the_body_schemas_take_what_the_routes_take(sidecar, method, body, status, field):
    client = await sidecar()
    doc = await document(client)
    schema = doc["paths"][HALT][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    assert validator(doc, schema).is_valid(body) == (status < 300)
    resp = await client.request(method, HALT, json=body)
    answer = await conforms(doc, resp, HALT, method)
    assert resp.status == status, answer
    if field is not None:
        assert answer["field"] == field, answer
    if status >= 400:
        assert (await (await client.get(HALT)).json())["halted"] is False  # nothing changed


async def test_the_reconciliation_report_matches_the_document(sidecar, redis_client):
    client = await sidecar(SERVICES, MIRROR_SYMBOLS="USDCOP,EURCOP")
    doc = await document(client)
    job = client.server.app[DESK].reconciler
    deadline = time.monotonic() + 10
    while job.report is None and time.monotonic() < deadline:  # the first run starts with the app
        await job.run_once()
    audit = client.server.app[AUDIT].logger
    await audit.log_position_opened({"position_id": "p1", "symbol": "USDCOP", "side": "LONG",
                                     "quantity": 100, "entry_price": 4000.0, "entry_time": ago(hours=2)})
    await audit.log_position_closed({"position_id": "ghost", "symbol": "USDCOP"})
    await audit.log_trade_executed({"trade_id": "t1", "signal_id": "nope", "symbol": "USDCOP"})
    await MetricsCache(redis_client).set_position({
        "position_id": "r1", "symbol": "EURCOP", "side": "SHORT", "quantity": 5,
        "entry_price": 4000.0, "entry_time": ago(hours=3)})
    await job.run_once()
    report = await conforms(doc, await client.get(RECONCILIATION), RECONCILIATION)
    assert report["mismatches"] == 2 and report["orphan_trades"] and report["issues"]
    assert {p["source"] for p in report["stale_positions"]} == {"audit", "redis"}
