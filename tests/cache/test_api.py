"""GET/POST/DELETE /api/cache/signals on both backends: answers, and every bad input's 4xx."""

from __future__ import annotations

import json

import pytest

from exporter.api import cache
from exporter.api.cache import CACHE
from exporter.api.keys import DEPENDENCIES, READY
from tests.cache.helpers import make_signal
from tests.support.apps import feature_app

PATH = "/api/cache/signals"


@pytest.fixture(params=["memory", "redis"])
async def api(request, aiohttp_client, registry, redis_url, redis_namespace, tmp_path):
    url = redis_url if request.param == "redis" else None
    app = feature_app(tmp_path, registry, (cache,), redis_url=url, redis_namespace=redis_namespace, mirror_interval=60.0)
    return await aiohttp_client(app)


async def expect_error(resp, status: int, field: str | None, text: str) -> dict:
    body = await resp.json()
    assert resp.status == status, body
    assert body["field"] == field, body
    assert text in body["detail"], body
    return body


async def test_post_then_read_back(api):
    sig = make_signal()
    resp = await api.post(PATH, json=sig)
    assert resp.status == 201
    assert await resp.json() == {"signal": sig}
    assert await (await api.get(PATH)).json() == {"signal": sig}
    assert await (await api.get(PATH, params={"type": "latest", "symbol": "USDCOP"})).json() == {"signal": sig}
    assert await (await api.get(PATH, params={"symbol": "EURUSD"})).json() == {"signal": None}
    history = await (await api.get(PATH, params={"type": "history", "symbol": "USDCOP"})).json()
    assert history == {"symbol": "USDCOP", "signals": [sig]}
    stats = await (await api.get(PATH, params={"type": "stats", "symbol": "USDCOP"})).json()
    assert stats["count"] == 1
    assert stats["by_action"]["BUY"] == 1


async def test_history_limit_and_order(api):
    for i in range(4):
        assert (await api.post(PATH, json=make_signal(seconds_ago=10 - i, signal_id=f"s{i}"))).status == 201
    body = await (await api.get(PATH, params={"type": "history", "symbol": "USDCOP", "limit": "2"})).json()
    assert [s["signal_id"] for s in body["signals"]] == ["s3", "s2"]


async def test_empty_cache_answers(api):
    assert await (await api.get(PATH)).json() == {"signal": None}
    assert await (await api.get(PATH, params={"type": "history", "symbol": "USDCOP"})).json() == {
        "symbol": "USDCOP", "signals": []}
    stats = await (await api.get(PATH, params={"type": "stats", "symbol": "USDCOP"})).json()
    assert stats["count"] == 0 and stats["confidence"]["mean"] is None


async def test_delete(api):
    await api.post(PATH, json=make_signal("USDCOP"))
    await api.post(PATH, json=make_signal("EURUSD"))
    resp = await api.delete(PATH, params={"symbol": "USDCOP"})
    assert await resp.json() == {"cleared": 1}
    assert (await (await api.get(PATH)).json())["signal"]["symbol"] == "EURUSD"
    assert await (await api.delete(PATH)).json() == {"cleared": 2}
    assert await (await api.get(PATH)).json() == {"signal": None}


@pytest.mark.parametrize(
    ("change", "status", "field", "text"),
    [
        ({"x" * 257: 1}, 422, "x" * 40, "field names must be"),
        ({"price": None}, 422, "price", "is required"),
        ({"confidence": 1.5}, 422, "confidence", "must be <= 1"),
        ({"confidence": "high"}, 422, "confidence", "must be a number"),
        ({"action": "STRONG_BUY"}, 422, "action", "must be one of BUY|SELL|HOLD"),
        ({"symbol": "usdcop"}, 422, "symbol", "must match"),
        ({"timestamp": "2025-01-15T10:30:00"}, 422, "timestamp", "must carry an offset"),
        ({"price": -4250}, 422, "price", "must be > 0"),
        ({"features": [1]}, 422, "features", "must be a JSON object"),
        ({"features": {"x": "y" * 70_000}}, 413, "features", "larger than 64 KiB"),
        ({"execution_latency_ms": -3}, 422, "execution_latency_ms", "must be >= 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_post_invalid_signal(api, change, status, field, text):
    sig = {**make_signal(), **change}
    sig = {k: v for k, v in sig.items() if v is not None}
    await expect_error(await api.post(PATH, json=sig), status, field, text)
    assert await (await api.get(PATH)).json() == {"signal": None}  # nothing changed


@pytest.mark.parametrize(
    ("data", "headers", "status", "field", "text"),
    [
        (b'{"confidence": NaN}', None, 400, None, "NaN is not allowed"),
        (b'{"a": 1, "a": 2}', None, 400, "a", "duplicate key"),
        (b"{", None, 400, None, "malformed JSON"),
        (b"", None, 400, None, "empty"),
        (b"[1, 2]", None, 422, None, "must be a JSON object"),
        (b"{}", {"Content-Type": "text/plain"}, 415, None, "application/json"),
        (b'{"x": "' + b"a" * (1024 * 1024) + b'"}', None, 413, None, "over 1048576 bytes"),
    ],
    ids=["nan", "duplicate", "malformed", "empty", "array", "content-type", "oversize"],
)
async def test_post_malformed_body(api, data, headers, status, field, text):
    headers = headers or {"Content-Type": "application/json"}
    await expect_error(await api.post(PATH, data=data, headers=headers), status, field, text)


async def test_post_refuses_query_parameters(api):
    resp = await api.post(PATH, params={"symbol": "USDCOP"}, json=make_signal())
    await expect_error(resp, 400, "symbol", "unknown query parameter")


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"type": "everything"}, "type", "type must be one of latest, history, stats"),
        ({"type": "history"}, "symbol", "'symbol' is required"),
        ({"type": "stats"}, "symbol", "'symbol' is required"),
        ({"type": "history", "symbol": "usd"}, "symbol", "symbol must match"),
        ({"type": "history", "symbol": "USDCOP", "limit": "0"}, "limit", "between 1 and 1000"),
        ({"type": "history", "symbol": "USDCOP", "limit": "1001"}, "limit", "between 1 and 1000"),
        ({"type": "history", "symbol": "USDCOP", "limit": "ten"}, "limit", "must be an integer"),
        ({"type": "latest", "limit": "5"}, "limit", "unknown query parameter"),
        ({"symbol": "USDCOP", "sort": "asc"}, "sort", "unknown query parameter"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
async def test_get_bad_query(api, params, field, text):
    await expect_error(await api.get(PATH, params=params), 400, field, text)


@pytest.mark.parametrize(("params", "field"), [({"symbol": "x"}, "symbol"), ({"all": "1"}, "all")])
async def test_delete_bad_query(api, params, field):
    await api.post(PATH, json=make_signal())
    resp = await api.delete(PATH, params=params)
    assert resp.status == 400
    assert (await resp.json())["field"] == field
    assert (await (await api.get(PATH)).json())["signal"] is not None


async def test_a_signal_with_extra_fields_is_stored_with_them(api):
    sig = make_signal(strategy="momentum", source={"desk": "bogota"})
    resp = await api.post(PATH, json=sig)
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {"signal": sig}
    history = await (await api.get(PATH, params={"type": "history", "symbol": "USDCOP"})).json()
    assert history == {"symbol": "USDCOP", "signals": [sig]}


async def test_a_json_array_history_is_read_and_a_write_onto_it_is_a_conflict(api):
    client = api.app[CACHE].client
    old, new = make_signal(seconds_ago=20, signal_id="old"), make_signal(seconds_ago=5, signal_id="new")
    await client.set("signal:history:USDCOP", [old, new], ttl=0)  # one JSON array in a string
    resp = await api.get(PATH, params={"type": "history", "symbol": "USDCOP"})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"symbol": "USDCOP", "signals": [new, old]}
    stats = await (await api.get(PATH, params={"type": "stats", "symbol": "USDCOP"})).json()
    assert stats["count"] == 2
    latest = await (await api.get(PATH, params={"symbol": "USDCOP"})).json()
    assert latest == {"signal": new}
    resp = await api.post(PATH, json=make_signal())
    await expect_error(resp, 409, None, "not a list")
    assert await (await api.get(PATH)).json() == {"signal": None}


async def test_a_stored_value_that_is_not_json_is_a_bad_gateway(api):
    client = api.app[CACHE].client
    await client.backend.set(client.key("signal:latest"), b"garbage", 0)
    body = await expect_error(await api.get(PATH), 502, None, "does not hold JSON")
    assert body["error"] == "bad_value"


async def test_ready_and_dependencies(api):
    assert api.app[READY]["cache"] is True
    if api.app[CACHE].client.is_redis:
        assert api.app[DEPENDENCIES]["redis"]()["up"] in (True, None)
    else:
        assert "redis" not in api.app[DEPENDENCIES]


async def test_a_history_string_that_is_no_array_is_a_bad_gateway(api):
    client = api.app[CACHE].client
    await client.set("signal:history:USDCOP", {"signals": []}, ttl=0)
    resp = await api.get(PATH, params={"type": "history", "symbol": "USDCOP"})
    body = await expect_error(resp, 502, None, "neither a list nor a JSON array")
    assert body["error"] == "bad_value"
