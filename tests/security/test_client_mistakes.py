"""A client's mistake is a 4xx naming what is wrong, and changes nothing: extreme dates,
lone UTF-16 surrogates, line separators, gzip bodies (the size limits apply after
decompression; other codings are 415). A real sidecar behind its real listener, on the
machine's Redis and Postgres."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from exporter.api.keys import REGISTRY
from tests.cache.helpers import make_signal

from .conftest import HASH, limit_count, running

TOKEN = "client-mistakes-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json", **AUTH}
GZIP = {**JSON, "Content-Encoding": "gzip"}
AUDIT = "/api/audit/signals"
CACHE = "/api/cache/signals"
HALT = "/api/trading/halt"
LATENCY = "/api/health/latency"
EARLY = "0001-01-01T00:00:00+01:00"  # before 0001-01-01T00:00Z: no UTC form
LATE = "9999-12-31T23:59:59-01:00"  # after 9999-12-31T23:59:59Z


@pytest.fixture
async def sidecar(make_sidecar, pg_dsn, redis_url, redis_namespace):
    """(base URL, session, app) of a sidecar on Redis and Postgres, the write token set."""
    app = make_sidecar(EXPORTER_API_TOKEN=TOKEN, REDIS_URL=redis_url,
                       REDIS_NAMESPACE=redis_namespace, POSTGRES_URL=pg_dsn)
    async with running(app) as base, aiohttp.ClientSession(base_url=base) as http:
        yield http, app


async def call(http, method: str, path: str, *, data: bytes | str | None = None,
               headers: dict | None = None, **kw) -> tuple[int, dict]:
    async with http.request(method, path, data=data, headers=headers or JSON, **kw) as resp:
        return resp.status, await resp.json()


async def audit_count(http) -> int:
    status, body = await call(http, "GET", AUDIT + "?eventType=TEST_EVENT")
    assert status == 200, body
    return len(body["events"])


# -- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("when", [EARLY, LATE])
async def test_event_times_without_a_utc_form_are_422_naming_the_field(sidecar, when):
    http, _ = sidecar
    one = json.dumps({"event_type": "TEST_EVENT", "timestamp": when})
    assert await call(http, "POST", AUDIT, data=one) == (422, {
        "error": "invalid", "field": "timestamp",
        "detail": f"timestamp is out of range: {when!r} has no UTC time between years 1 and 9999"})
    batch = json.dumps({"events": [{"event_type": "TEST_EVENT"},
                                   {"event_type": "TEST_EVENT", "timestamp": when}]})
    status, body = await call(http, "POST", AUDIT, data=batch)
    assert (status, body["field"]) == (422, "events[1].timestamp")
    assert await audit_count(http) == 0


@pytest.mark.parametrize("name", ["startTime", "endTime"])
@pytest.mark.parametrize("when", [EARLY, LATE])
async def test_query_times_without_a_utc_form_are_400_for_any_reader(sidecar, name, when):
    http, _ = sidecar
    status, body = await call(http, "GET", AUDIT, params={name: when}, headers={})
    assert (status, body["error"], body["field"]) == (400, "bad_request", name)
    assert "out of range" in body["detail"]


async def test_signals_from_beyond_the_future_skew_are_422(sidecar):
    http, _ = sidecar
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for when in ("9999-12-31T23:59:59Z", ahead):
        status, body = await call(http, "POST", CACHE, data=json.dumps(make_signal(timestamp=when)))
        assert (status, body["field"]) == (422, "timestamp"), body
        assert "AUDIT_MAX_FUTURE_SKEW" in body["detail"]
    assert await call(http, "GET", CACHE, headers={}) == (200, {"signal": None})
    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()  # within the 300 s skew
    status, body = await call(http, "POST", CACHE, data=json.dumps(make_signal(timestamp=soon)))
    assert status == 201, body


# -- lone surrogates and line separators ----------------------------------------------------


def _signal_text(field: str, text: str) -> str:
    """A signal whose `field` holds `text` as written in JSON (escapes kept)."""
    raw = json.dumps(make_signal(**{field: "PLACEHOLDER"}))
    return raw.replace('"PLACEHOLDER"', f'"{text}"')


@pytest.mark.parametrize("method,path,body,field", [
    ("POST", HALT, '{"actor": "\\ud800"}', "actor"),
    ("POST", HALT, '{"actor": "desk", "note": "a\\udc00b"}', "note"),
    ("DELETE", HALT, '{"actor": "\\udfff"}', "actor"),
    ("POST", CACHE, _signal_text("signal_id", "\\ud800"), "signal_id"),
    ("POST", CACHE, _signal_text("model_version", "v\\udbff"), "model_version"),
    ("POST", CACHE, _signal_text("features", "PLACEHOLDER").replace(
        '"PLACEHOLDER"', '{"\\ud800": 1}'), "features.\\ud800"),
    ("POST", AUDIT, '{"event_type": "TEST_EVENT", "actor": "\\ud800"}', "actor"),
    ("POST", LATENCY, '{"service": "s", "operation": "o", "latency_ms": 1, '
                      '"metadata": {"k": ["\\ud800"]}}', "metadata.k[0]"),
])
async def test_lone_surrogates_are_422_naming_the_field(sidecar, method, path, body, field):
    http, app = sidecar
    assert (await call(http, "POST", HALT, data='{"actor": "desk-lead"}'))[0] == 201
    status, answer = await call(http, method, path, data=body)
    assert (status, answer["error"], answer["field"]) == (422, "invalid", field), answer
    assert "lone UTF-16 surrogate" in answer["detail"]
    status, halt = await call(http, "GET", HALT, headers={})
    assert (status, halt["halted"], halt["actor"]) == (200, True, "desk-lead")  # unchanged
    assert await call(http, "GET", CACHE, headers={}) == (200, {"signal": None})


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"])
async def test_line_separators_are_refused_where_control_characters_are(sidecar, char):
    http, _ = sidecar
    for body, field in (({"actor": f"desk{char}lead"}, "actor"),
                        ({"actor": "desk", "note": f"one{char}two"}, "note")):
        status, answer = await call(http, "POST", HALT, data=json.dumps(body))
        assert (status, answer["field"]) == (422, field), answer
    assert (await call(http, "GET", HALT, headers={}))[1]["halted"] is False
    status, answer = await call(http, "POST", AUDIT, data=json.dumps(
        {"event_type": "TEST_EVENT", "actor": f"desk{char}lead"}))
    assert (status, answer["field"]) == (422, "actor"), answer
    assert await audit_count(http) == 0


# -- gzip bodies -----------------------------------------------------------------------------


def _records(n: int) -> list[dict]:
    return [{"service": "svc", "operation": f"op{i % 50}", "latency_ms": 1.5,
             "metadata": {"pad": "x" * 1000}} for i in range(n)]


async def _window_count(http) -> int:
    status, body = await call(http, "GET", LATENCY + "?service=svc", headers={})
    assert status == 200, body
    return body["count"]


async def test_gzip_batch_larger_than_the_single_body_limit_is_taken_whole(sidecar):
    http, _ = sidecar
    raw = json.dumps({"records": _records(1000)}).encode()
    packed = gzip.compress(raw)
    assert len(raw) > 1024 * 1024 > 100 * len(packed)  # 1.08 MB as JSON, a few KB on the wire
    assert await call(http, "POST", LATENCY, data=packed, headers=GZIP) == (200, {"accepted": 1000})
    assert await _window_count(http) == 1000
    events = [{"event_type": "TEST_EVENT", "data": {"pad": "y" * 1500}} for _ in range(1000)]
    status, body = await call(http, "POST", AUDIT, headers=GZIP,
                              data=gzip.compress(json.dumps({"events": events}).encode()))
    assert (status, body["summary"]["stored"]) == (201, 1000)


@pytest.mark.parametrize("path,single", [
    (LATENCY, {"service": "svc", "operation": "op", "latency_ms": 1}),
    (AUDIT, {"event_type": "TEST_EVENT"}),
    (CACHE, make_signal()),
])
async def test_limits_apply_after_decompression(sidecar, path, single):
    http, app = sidecar
    padded = json.dumps(single).encode()[:-1] + b" " * (1024 * 1024) + b"}"  # 1 MiB of blanks
    status, body = await call(http, "POST", path, data=gzip.compress(padded), headers=GZIP)
    assert (status, body["error"]) == (413, "payload_too_large"), body
    assert limit_count(app[REGISTRY], "body") == 1
    assert await _window_count(http) == 0
    assert await audit_count(http) == 0
    assert await call(http, "GET", CACHE, headers={}) == (200, {"signal": None})


async def test_a_gzip_bomb_is_413(sidecar):
    http, _ = sidecar
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), 9)  # 200 MB in about 200 KB
    status, body = await call(http, "POST", LATENCY, data=bomb, headers=GZIP)
    assert (status, body["error"]) == (413, "payload_too_large"), body
    assert "after gzip decompression" in body["detail"]
    status, body = await call(http, "POST", HALT, data=bomb, headers=GZIP)
    assert (status, body["error"]) == (413, "payload_too_large"), body
    assert await _window_count(http) == 0


@pytest.mark.parametrize("data", [
    b"\x1f\x8b\x08\x00garbage",  # a gzip header, then not deflate
    b"plainly not gzip",
    gzip.compress(b'{"service": "svc", "operation": "op", "latency_ms": 1}')[:-6],  # truncated
    gzip.compress(b'{"service": "svc", "operation": "op", "latency_ms": 1}') + b"trailing",
    gzip.compress(b'{"service": "svc", "operation": "op", "latency_ms": 1}')[:10]
    + b"\xff" * 40,  # a header, then corrupt deflate data
])
async def test_corrupt_gzip_is_400(sidecar, data):
    http, _ = sidecar
    status, body = await call(http, "POST", LATENCY, data=data, headers=GZIP)
    assert (status, body["error"], body["field"]) == (400, "bad_request", "Content-Encoding"), body
    assert await _window_count(http) == 0


@pytest.mark.parametrize("coding", ["br", "deflate", "zstd", "compress", "gzip, gzip", "bogus"])
async def test_other_content_encodings_are_415(sidecar, coding):
    http, _ = sidecar
    plain = b'{"service": "svc", "operation": "op", "latency_ms": 1}'
    status, body = await call(http, "POST", LATENCY, data=plain,
                              headers={**JSON, "Content-Encoding": coding})
    assert (status, body["error"], body["field"]) == (415, "unsupported_media_type",
                                                      "Content-Encoding"), body
    assert await _window_count(http) == 0


@pytest.mark.parametrize("coding", ["identity", "gzip", "GZip", "x-gzip"])
async def test_identity_and_gzip_are_taken(sidecar, coding):
    http, _ = sidecar
    plain = b'{"service": "svc", "operation": "op", "latency_ms": 1}'
    data = plain if coding == "identity" else gzip.compress(plain)
    assert await call(http, "POST", LATENCY, data=data,
                      headers={**JSON, "Content-Encoding": coding}) == (200, {"accepted": 1})
    # several gzip members are one gzip body
    data = gzip.compress(plain[:10]) + gzip.compress(plain[10:])
    assert await call(http, "POST", LATENCY, data=data, headers=GZIP) == (200, {"accepted": 1})


# -- header bytes that are not UTF-8 -------------------------------------------------------


async def _raw(base: str, request: bytes) -> int:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    return int(line.split()[1])


@pytest.mark.parametrize("credential", [b"Bearer \xff\xfe\x80", b"Bearer tok\xc3", b"Basic \xff\xff"])
@pytest.mark.parametrize("method,path", [(b"POST", b"/api/health/latency"),
                                         (b"DELETE", b"/api/audit/signals"),
                                         (b"GET", b"/api/health/services")])
async def test_credentials_that_are_not_utf8_are_refused_not_a_fault(
        make_sidecar, credential, method, path):
    app = make_sidecar(EXPORTER_API_TOKEN=TOKEN, EXPORTER_ADMIN_TOKEN=TOKEN + "-admin",
                       web_config=f"basic_auth_users:\n  reader: {HASH}\n")
    async with running(app) as base:
        status = await _raw(base, method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n"
                            b"Authorization: " + credential + b"\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
    assert status == 401


@pytest.mark.parametrize("escape", ["\\u2028", "\\u2029", "\\x85"])
def test_line_separators_are_refused_in_probe_headers_and_user_names(escape):
    from exporter.config import ConfigError, parse_config
    from exporter.security.webconfig import parse_web_config

    services = ("services:\n  - name: api\n    url: http://127.0.0.1:1/health\n"
                f'    headers: {{X-Desk: "a{escape}b"}}\n')
    with pytest.raises(ConfigError, match="line break or control character"):
        parse_config(services)
    web = f'basic_auth_users:\n  "desk{escape}lead": {HASH}\n'
    with pytest.raises(ConfigError, match="user name is 1 to 256 characters"):
        parse_web_config(web.encode(), "web.yml")
