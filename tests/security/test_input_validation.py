"""Bad input on every route of the route table: NaN/Infinity, NUL bytes, duplicate keys,
huge integers, wrong types, unknown fields and unknown query parameters are clear 4xx
naming the field where there is one, never a 5xx, and change nothing."""

from __future__ import annotations

import aiohttp
import pytest

from exporter.api.keys import ROUTE_INDEX

from .conftest import running

SERVICES = "services:\n  - {name: self, type: tcp, address: '127.0.0.1:1'}\n"
HOSTILE = [
    ("NaN", b'{"a": NaN}', 400, None),
    ("Infinity", b'{"a": -Infinity}', 400, None),
    ("huge float", b'{"a": 1e999}', 400, None),
    ("NUL in a string", b'{"a": "x\\u0000y"}', 400, None),
    ("NUL in a key", b'{"a\\u0000": 1}', 400, None),
    ("duplicate key", b'{"a": 1, "a": 2}', 400, "a"),
    ("huge integer", b'{"a": 1' + b"0" * 400 + b"}", 400, None),
    ("not an object", b"[1, 2]", 422, None),
    ("unknown field", b'{"zzz_unknown": 1}', 422, "zzz_unknown"),
    ("not JSON", b"{this is not json", 400, None),
    ("not UTF-8", b'{"a": "\xff\xfe"}', 400, None),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, 400, None),
    ("empty", b"", 400, None),
]
# A signal keeps fields beyond the known ones: there the first missing required field is named.
OPEN_BODIES = {("/api/cache/signals", "unknown field"): "signal_id"}


@pytest.fixture
async def sidecar(make_sidecar):
    app = make_sidecar(SERVICES)
    async with running(app) as base, aiohttp.ClientSession() as http:
        yield app, base, http


def _body_routes(app):
    return sorted(k for k, r in app[ROUTE_INDEX].items() if k[0] == "POST" and k[1] != "/-/reload")


async def test_hostile_bodies_on_every_body_route(sidecar, registry):
    app, base, http = sidecar
    routes = _body_routes(app)
    assert ("POST", "/api/health/services") in routes and len(routes) >= 4
    for method, path in routes:
        for name, raw, status, field in HOSTILE:
            async with http.request(method, base + path, data=raw,
                                    headers={"Content-Type": "application/json"}) as resp:
                body = await resp.json()
                assert resp.status == status, (path, name, resp.status, body)
                assert body["error"] in ("bad_request", "invalid") and body["detail"], (path, name)
                if field is not None:
                    expected = OPEN_BODIES.get((path, name), field)
                    assert body["field"] == expected, (path, name, body)
        async with http.request(method, base + path, data=b'{"a": 1}',
                                headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 415, path
    samples = [s for m in registry.collect() for s in m.samples if s.name == "usdcop_http_requests_total"]
    assert not [s for s in samples if s.labels["code"].startswith("5")]


async def test_wrong_types_name_the_field(sidecar):
    _, base, http = sidecar
    cases = [
        ("/api/health/services", {"service": 7}, "service"),
        ("/api/health/latency", {"service": "s", "operation": "o", "latency_ms": "fast"}, "latency_ms"),
        ("/api/health/latency", {"service": "s", "operation": "o", "latency_ms": True}, "latency_ms"),
        ("/api/cache/signals", {"signal_id": "s", "timestamp": "2025-01-15T10:30:00+00:00", "symbol": "USDCOP",
                                "action": "BUY", "confidence": "high", "price": 4000}, "confidence"),
        ("/api/audit/signals", {"event_type": ["X"]}, "event_type"),
    ]
    for path, payload, field in cases:
        async with http.post(base + path, json=payload) as resp:
            body = await resp.json()
            assert resp.status == 422 and body["field"] == field, (path, body)


async def test_unknown_query_parameters_on_every_route(sidecar):
    app, base, http = sidecar
    for method, path in sorted(app[ROUTE_INDEX]):
        if method == "DELETE" and path == "/api/audit/signals":
            continue  # admin: refused before its query is looked at
        async with http.request(method, base + path + "?bogus_param=1") as resp:
            body = await resp.json()
            assert resp.status == 400, (method, path, resp.status)
            assert body["field"] == "bogus_param" and "bogus_param" in body["detail"], (method, path, body)


async def test_bad_input_changes_nothing(sidecar):
    _, base, http = sidecar
    async with http.get(base + "/api/health/latency?type=stats&service=desk") as resp:
        before = await resp.json()
    records = {"records": [{"service": "desk", "operation": "op", "latency_ms": 1}] * 3 + [{"service": "desk"}]}
    async with http.post(base + "/api/health/latency", json=records) as resp:
        assert resp.status == 422 and (await resp.json())["field"].startswith("records[3]")
    async with http.get(base + "/api/health/latency?type=stats&service=desk") as resp:
        assert await resp.json() == before  # all or nothing
