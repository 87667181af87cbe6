"""The cache routes' OpenAPI document is true: live answers match their response schemas,
and the request schema takes exactly the bodies and queries the routes take."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest

from exporter.api import cache
from exporter.api.keys import ROUTES
from exporter.api.openapi import build_openapi
from tests.cache.helpers import make_signal
from tests.support.apps import feature_app
from tests.support.openapi_doc import query_schemas

PATH = "/api/cache/signals"


@pytest.fixture(params=["memory", "redis"])
async def api(request, aiohttp_client, registry, redis_url, redis_namespace, tmp_path):
    """The cache routes on either backend, with the document built from the same routes."""
    url = redis_url if request.param == "redis" else None
    app = feature_app(tmp_path, registry, (cache,), redis_url=url,
                      redis_namespace=redis_namespace, mirror_interval=60.0)
    client = await aiohttp_client(app)
    client.doc = build_openapi(app[ROUTES])
    return client


def validator(doc: dict, schema: dict):
    """A validator resolving `#/...` references against the whole document."""
    return jsonschema_rs.validator_for({**schema, "paths": doc["paths"], "components": doc["components"]})


async def conforms(api, resp, method: str = "GET") -> dict:
    """The answer's body, after checking it against the documented schema of its status."""
    body = await resp.json()
    responses = api.doc["paths"][PATH][method.lower()]["responses"]
    assert str(resp.status) in responses, (method, resp.status, body)
    schema = responses[str(resp.status)]["content"]["application/json"]["schema"]
    errors = [e.message for e in validator(api.doc, schema).iter_errors(body)]
    assert not errors, (method, resp.status, body, errors)
    return body


async def test_answers_match_the_document(api):
    full = make_signal(features={"rsi": 45, "nested": {"levels": [1, 2.5, None, "x"], "ok": True}})
    bare = make_signal(symbol="EURCOP", signal_id="bare", features=None, model_version=None,
                       execution_latency_ms=None)
    nulls = {**make_signal(symbol="EURCOP", seconds_ago=-1, signal_id="nulls", features=None),
             "features": None, "model_version": None, "execution_latency_ms": None}
    for body in (full, bare, nulls):
        answer = await conforms(api, await api.post(PATH, json=body), "POST")
        assert answer["signal"]["signal_id"] == body["signal_id"]
    assert "features" not in answer["signal"]  # null is stored as absent
    for params in ({}, {"symbol": "USDCOP"}, {"type": "latest", "symbol": "GBPCOP"},
                   {"type": "history", "symbol": "EURCOP", "limit": "1"},
                   {"type": "history", "symbol": "GBPCOP"},
                   {"type": "stats", "symbol": "USDCOP"}, {"type": "stats", "symbol": "GBPCOP"},
                   {"type": "latest", "limit": "5"}, {"symbol": "usd"}):
        await conforms(api, await api.get(PATH, params=params))
    await conforms(api, await api.delete(PATH, params={"symbol": "EURCOP"}), "DELETE")
    await conforms(api, await api.delete(PATH, params={"symbol": ""}), "DELETE")
    await conforms(api, await api.delete(PATH), "DELETE")


async def test_a_key_of_another_type_answers_a_documented_conflict(api):
    client = api.app[cache.CACHE].client
    await client.set("signal:history:USDCOP", [make_signal()], ttl=0)  # read, but never written
    body = await conforms(api, await api.post(PATH, json=make_signal()), "POST")
    assert body["error"] == "conflict"
    await conforms(api, await api.get(PATH, params={"type": "history", "symbol": "USDCOP"}))


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({}, 201, None),
        ({"model_version": None, "features": None, "execution_latency_ms": None}, 201, None),
        ({"execution_latency_ms": 86_400_000}, 201, None),
        ({"execution_latency_ms": 86_400_001}, 422, "execution_latency_ms"),
        ({"signal_id": ""}, 422, "signal_id"),
        ({"model_version": ""}, 422, "model_version"),
        ({"symbol": "USDCOPUSDCOPX"}, 422, "symbol"),
        ({"features": {"a\u0000b": 1}}, 400, None),
        ({"features": {"a": [{"b": "\u0000"}]}}, 400, None),
        ({"features": []}, 422, "features"),
        ({"strategy": "momentum", "tags": [1, {"a": None}]}, 201, None),
        ({"x" * 257: 1}, 422, "x" * 40),
        ({"strategy": "a\u0000b"}, 400, None),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v),
)
async def test_the_body_schema_takes_what_the_route_takes(api, change, status, field):
    body = {**make_signal(), **change}
    schema = api.doc["paths"][PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert validator(api.doc, schema).is_valid(body) == (status == 201)
    resp = await api.post(PATH, json=body)
    answer = await conforms(api, resp, "POST")
    assert resp.status == status, answer
    if field is not None:
        assert answer["field"] == field, answer


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("GET", {"symbol": ""}, "symbol"),
        ("GET", {"type": "history", "symbol": "USDCOP", "limit": ""}, "limit"),
        ("GET", {"type": ""}, "type"),
        ("DELETE", {"symbol": ""}, "symbol"),
    ],
)
async def test_a_parameter_given_empty_is_refused(api, method, params, field):
    await api.post(PATH, json=make_signal())
    resp = await api.request(method, PATH, params=params)
    answer = await conforms(api, resp, method)
    assert resp.status == 400 and answer["field"] == field, answer
    assert "is empty" in answer["detail"] or "got ''" in answer["detail"], answer
    assert (await (await api.get(PATH)).json())["signal"] is not None  # nothing was cleared



def test_query_patterns_are_the_routes_patterns(api):
    for method in ("get", "delete"):
        params = query_schemas(api.doc["paths"][PATH][method])
        symbol = jsonschema_rs.validator_for(params["symbol"])
        assert symbol.is_valid("USDCOP") and symbol.is_valid("ABC")
        assert not any(symbol.is_valid(s) for s in ("", "usd", "AB", "USDCOPUSDCOPX", "USD-COP"))
