"""Secrets never leak. A real sidecar process runs with canary secrets planted in every
place a secret can live (tokens, a token file, the checkpoint key, DSN and URL passwords,
query tokens, probe header values, basic-auth passwords sent by clients, a bad reload);
it is driven through every route, failing probes, reloads and limit hits, then stopped.
Its logs, every API answer (bodies and headers), /metrics, the health values it wrote to
Redis and the audit rows it wrote to Postgres are searched for every canary."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import bcrypt
import psycopg
import redis.asyncio as aioredis

from tests.cli.test_serve_process import Proc
from tests.support.targets import targets  # noqa: F401  (fixture)
from tests.support.tools import free_port

SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent))


def canary(kind: str) -> str:
    return f"CANARY{kind}{uuid.uuid4().hex[:12]}"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_no_canary_secret_anywhere(tmp_path, targets, pg_dsn, redis_url, redis_namespace):  # noqa: F811
    secrets = {k: canary(k) for k in (
        "apitoken", "admintoken", "checkpointkey", "pgpass", "headerval", "urlpass", "querytoken",
        "redispass", "pgprobepass", "basicpass", "wrongbasic", "wrongbearer", "reloadpass",
        "hugeheader", "reloadheader", "wsheader", "wsquery", "wssend")}
    closed = free_port()
    admin_file = tmp_path / "admin.token"
    admin_file.write_text(secrets["admintoken"] + "\n")
    services = tmp_path / "services.yaml"
    services_text = f"""
defaults: {{timeout: 2s}}
services:
  - name: http-header
    url: http://127.0.0.1:{closed}/health
    headers: {{Authorization: "Bearer ${{CANARY_HEADER}}", X-Api-Key: "{secrets['headerval']}x"}}
  - name: http-creds
    url: "http://probe:{secrets['urlpass']}@127.0.0.1:{targets.port}/status/503?token={secrets['querytoken']}"
  - name: http-echo
    url: "http://probe:{secrets['urlpass']}@127.0.0.1:{targets.port}/echo"
    headers: {{X-Secret: "${{CANARY_HEADER}}"}}
  - name: redis-auth
    type: redis
    url: "redis://:{secrets['redispass']}@127.0.0.1:6379/11"
  - name: pg-down
    type: postgres
    url: "postgresql://postgres:{secrets['pgprobepass']}@127.0.0.1:{closed}/x"
  - name: pg-up
    type: postgres
    url: "postgresql://postgres:{secrets['pgprobepass']}@127.0.0.1:5432/postgres"
  - name: ws-secret
    type: websocket
    url: "ws://probe:{secrets['urlpass']}@127.0.0.1:{targets.port}/healthy?token={secrets['wsquery']}"
    headers: {{Authorization: "Bearer {secrets['wsheader']}"}}
    send: '{{"op": "auth", "key": "{secrets['wssend']}"}}'
  - name: job-push
    type: push
    max_silence: 1h
"""
    services.write_text(services_text)
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(secrets["basicpass"].encode(), bcrypt.gensalt(4)).decode()
    web.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    pg_url = pg_dsn.replace("postgresql://postgres@", f"postgresql://postgres:{secrets['pgpass']}@")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORTER_", "REDIS_", "POSTGRES_", "AUDIT_"))}
    env.update(
        LOG_FORMAT="json", LOG_LEVEL="debug", EXPORTER_SCHEDULER="off",
        EXPORTER_API_TOKEN=secrets["apitoken"], EXPORTER_ADMIN_TOKEN_FILE=str(admin_file),
        AUDIT_CHECKPOINT_KEY=secrets["checkpointkey"], AUDIT_CHECKPOINT_EVERY="1",
        AUDIT_SPOOL_DIR=str(tmp_path / "spool"), AUDIT_CHECKPOINT_DIR=str(tmp_path / "cp"),
        POSTGRES_URL=pg_url, REDIS_URL=redis_url, REDIS_NAMESPACE=redis_namespace,
        CANARY_HEADER=secrets["headerval"],
    )
    seen: list[str] = []  # every answer, headers and body
    proc = Proc([SCRIPT, "serve", "--config", str(services), "--listen", "127.0.0.1:0",
                 "--web-config", str(web)], env)
    try:
        host, port = proc.wait_line(r"listening on http://([\d.]+):(\d+)").groups()
        base = f"http://{host}:{port}"
        reader = {"Authorization": _basic("prometheus", secrets["basicpass"])}
        writer = {"Authorization": f"Bearer {secrets['apitoken']}"}
        admin = {"Authorization": f"Bearer {secrets['admintoken']}"}

        async with aiohttp.ClientSession() as http:
            async def call(method, path, headers=None, **kw):
                async with http.request(method, base + path, headers=headers, **kw) as resp:
                    body = await resp.text()
                    seen.append(f"{method} {path} {resp.status} {dict(resp.headers)}\n{body}")
                    return resp.status, body

            names = ["http-header", "http-creds", "http-echo", "redis-auth", "pg-down", "pg-up",
                     "ws-secret", "job-push"]
            # A push report's message is the job's own words: it is shown, so it is no place
            # for a secret; the canary checks the token that sent it is not.
            assert (await call("POST", "/api/health/push", writer, json={
                "service": "job-push", "status": "healthy", "latency_ms": 5}))[0] == 200
            for name in names:
                status, body = await call("POST", "/api/health/services", writer, json={"service": name})
                assert status == 200, body
                assert (await call("GET", f"/probe?service={name}", reader))[0] == 200
                assert (await call("GET", f"/probe?service={name}&debug=true", reader))[0] == 200
            for path in ("/api/health/services", "/readyz", "/healthz", "/api/openapi.json", "/metrics",
                         "/api/audit/signals?limit=1000", "/api/audit/verify", "/api/cache/signals?type=latest",
                         "/api/health/latency?service=desk"):
                status, _ = await call("GET", path, reader)
                assert status < 500, path
            assert (await call("GET", "/metrics", {"Authorization": _basic("prometheus", secrets["wrongbasic"])}))[0] == 401
            assert (await call("GET", "/metrics", {"Authorization": f"Bearer {secrets['wrongbearer']}"}))[0] == 401
            assert (await call("POST", "/api/health/latency", reader, json={"service": "desk",
                               "operation": "op", "latency_ms": 3}))[0] == 401
            assert (await call("GET", "/metrics", {**reader, "X-Huge": secrets["hugeheader"] * 700}))[0] == 431
            assert (await call("POST", "/api/audit/signals", writer, json={
                "event_type": "TRADE_EXECUTED", "symbol": "USDCOP", "data": {"trade_id": "t1"}}))[0] == 201
            # a reload that adds a service with a secret header: CONFIG_CHANGED must not carry it
            services.write_text(services_text + (
                f"  - name: added\n    url: http://127.0.0.1:{closed}/\n"
                f"    headers: {{Authorization: \"Bearer {secrets['reloadheader']}\"}}\n"))
            assert (await call("POST", "/-/reload", writer))[0] == 200
            # a reload that fails, on a line holding a password
            services.write_text(f"services:\n  - name: bad\n    url: http://u:{secrets['reloadpass']}@h:notaport/\n")
            status, body = await call("POST", "/-/reload", writer)
            assert status == 400 and "invalid" in body
            assert (await call("DELETE", "/api/audit/signals", admin))[0] == 200
            assert (await call("DELETE", "/api/audit/signals", writer))[0] == 403
            assert (await call("GET", "/api/audit/signals?limit=1000", reader))[0] == 200
            assert (await call("GET", "/metrics", reader))[0] == 200
        proc.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.proc.wait, 15) == 0
        # the other sub-commands print too
        services.write_text(services_text)
        outputs = []
        for args in (["probe", "http-creds", "--config", str(services)],
                     ["probe", "ws-secret", "--config", str(services)],
                     ["probe", "pg-down", "--config", str(services)],
                     ["check-config", str(services)], ["audit", "verify"]):
            result = subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=60)
            outputs.append(f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    finally:
        proc.stop()

    client = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{redis_namespace}:*")]
        redis_values = [f"{k!r} {await client.get(k)!r}" for k in keys if await client.type(k) == b"string"]
    finally:
        await client.aclose()
    assert any(b":health:" in k for k in keys), keys  # the health values were written
    with psycopg.connect(pg_dsn) as conn:
        rows = [" ".join(map(str, r)) for r in conn.execute(
            "SELECT event_type, symbol, actor, data::text FROM usdcop_audit.events").fetchall()]
        checkpoints = [str(r) for r in conn.execute("SELECT * FROM usdcop_audit.checkpoints").fetchall()]
    assert any(r.startswith("SERVICE_STATUS_CHANGED") or r.startswith("CONFIG_CHANGED") for r in rows), rows
    files = [p.read_text(errors="replace") for p in (tmp_path / "cp").rglob("*") if p.is_file()]

    places = {"logs": "".join(proc.lines), "answers": "\n".join(seen), "cli": "\n".join(outputs),
              "redis": "\n".join(redis_values), "audit rows": "\n".join(rows + checkpoints),
              "checkpoint files": "\n".join(files)}
    assert len(places["logs"]) > 1000 and len(places["answers"]) > 10000  # there was plenty to search
    leaks = [(kind, where) for kind, value in secrets.items() for where, text in places.items()
             if value in text]
    assert not leaks, f"secrets leaked: {leaks}"
    # The echo target got the secret header and URL credentials and sent them back in its
    # body: the sidecar had them in hand and still showed them nowhere.
    assert targets.hits["/echo"] >= 2
