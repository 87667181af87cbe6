"""The latency routes' OpenAPI document is true: live answers match their response schemas,
and the request schema takes exactly the bodies and queries the routes take."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import jsonschema_rs
import pytest
from prometheus_client import CollectorRegistry

from exporter.api import latency
from exporter.api.keys import ROUTES
from exporter.api.openapi import build_openapi
from tests.support.apps import feature_app
from tests.support.openapi_doc import query_schemas

URL = "/api/health/latency"


def _document() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        app = feature_app(Path(tmp), CollectorRegistry(), (latency,))
    return build_openapi(app[ROUTES])


DOC = _document()


@pytest.fixture
async def client(aiohttp_client, registry, make_latency_app):
    return await aiohttp_client(make_latency_app(registry, latency_max_pairs=3))


def validator(schema: dict):
    """A validator resolving `#/...` references against the whole document."""
    return jsonschema_rs.validator_for({**schema, "paths": DOC["paths"], "components": DOC["components"]})


async def conforms(resp, method: str = "GET") -> dict:
    """The answer's body, after checking it against the documented schema of its status."""
    body = await resp.json()
    responses = DOC["paths"][URL][method.lower()]["responses"]
    assert str(resp.status) in responses, (method, resp.status, body)
    schema = responses[str(resp.status)]["content"]["application/json"]["schema"]
    errors = [e.message for e in validator(schema).iter_errors(body)]
    assert not errors, (method, resp.status, body, errors)
    return body


def rec(service="trading-api", operation="execute_trade", latency_ms=125.0, **extra):
    return {"service": service, "operation": operation, "latency_ms": latency_ms, **extra}


async def test_answers_match_the_document(client):
    for params in ({"service": "trading-api"}, {"type": "average", "service": "trading-api"},
                   {"type": "trend", "service": "trading-api"}, {"type": "high"}):
        await conforms(await client.get(URL, params=params))  # empty window: nulls
    posts = [
        rec(success=False, metadata={"symbol": "USDCOP", "n": [1, {"deep": None}]}, trace_id="t-1"),
        rec(operation="quote", latency_ms=3000, success=None, metadata=None, trace_id=None),
        {"records": [rec(latency_ms=75), rec(service="ml-analytics", latency_ms=0)]},
        {"records": []},
    ]
    for body in posts:
        await conforms(await client.post(URL, json=body), "POST")
    for params in ({"service": "trading-api"}, {"service": "trading-api", "operation": "quote"},
                   {"type": "average", "service": "trading-api", "minutes": "60"},
                   {"type": "trend", "service": "trading-api", "operation": "execute_trade"},
                   {"type": "high", "threshold": "100", "minutes": "1"},
                   {"type": "high", "service": "trading-api"}, {"service": ""}):
        await conforms(await client.get(URL, params=params))
    guarded = await conforms(await client.post(URL, json=rec(operation="fourth")), "POST")
    assert guarded["error"] == "too_many_pairs"
    await conforms(await client.delete(URL, params={"service": "ml-analytics"}), "DELETE")
    await conforms(await client.delete(URL, params={"service": ""}), "DELETE")
    assert (await conforms(await client.delete(URL), "DELETE"))["cleared"] == 3


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (rec(), 200, None),
        (rec(trace_id=None, success=None, metadata=None), 200, None),
        ({"records": [rec(trace_id=None)]}, 200, None),
        (rec(trace_id=""), 422, "trace_id"),
        (rec(trace_id="has space"), 422, "trace_id"),
        (rec(service=""), 422, "service"),
        (rec(latency_ms=-1), 422, "latency_ms"),
        (rec(latency_ms=86_400_001), 422, "latency_ms"),
        (rec(success="yes"), 422, "success"),
        (rec(metadata={"k\u0000": 1}), 400, None),
        (rec(metadata={"k": ["\u0000"]}), 400, None),
        ({"records": [rec(), rec(colour="red")]}, 422, "records[1].colour"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v),
)
async def test_the_body_schema_takes_what_the_route_takes(client, body, status, field):
    schema = DOC["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert validator(schema).is_valid(body) == (status == 200)
    resp = await client.post(URL, json=body)
    answer = await conforms(resp, "POST")
    assert resp.status == status, answer
    if field is not None:
        assert answer["field"] == field, answer


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("GET", {"service": ""}, "service"),
        ("GET", {"service": "a", "operation": ""}, "operation"),
        ("GET", {"type": "average", "service": "a", "minutes": ""}, "minutes"),
        ("GET", {"type": "high", "threshold": ""}, "threshold"),
        ("GET", {"type": "", "service": "a"}, "type"),
        ("DELETE", {"service": ""}, "service"),
    ],
)
async def test_a_parameter_given_empty_is_refused(client, method, params, field):
    await client.post(URL, json=rec())
    resp = await client.request(method, URL, params=params)
    answer = await conforms(resp, method)
    assert resp.status == 400 and answer["field"] == field, answer
    assert "is empty" in answer["detail"] or "got ''" in answer["detail"], answer
    stats = await (await client.get(URL, params={"service": "trading-api"})).json()
    assert stats["count"] == 1  # nothing was cleared



def test_query_patterns_are_the_routes_patterns():
    for method in ("get", "delete"):
        params = query_schemas(DOC["paths"][URL][method])
        service = jsonschema_rs.validator_for(params["service"])
        assert service.is_valid("trading-api") and service.is_valid("op.v1:get-1")
        assert not any(service.is_valid(s) for s in ("", "a b", "x" * 65, "a/b"))
