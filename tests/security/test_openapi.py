"""The OpenAPI document is kept true: it lists exactly the routes the router serves, with
their auth levels; no request field names a host or URL; live answers of the core routes
match their schemas; and schemathesis, run against a live sidecar, finds no 5xx, no
ignored auth, and no drift beyond the known findings in schemathesis-baseline.json."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import jsonschema_rs

from exporter.api.keys import ROUTE_INDEX, ROUTES
from exporter.api.openapi import CORE_RESPONSES, build_openapi
from tests.cli.test_serve_process import Proc
from tests.support.targets import targets  # noqa: F401  (fixture)

from .conftest import running

BIN = Path(sys.executable).parent
SCRIPT = shutil.which("usdcop-exporter", path=str(BIN))
SCHEMATHESIS = shutil.which("schemathesis", path=str(BIN))
BASELINE = Path(__file__).with_name("schemathesis-baseline.json")
HOSTISH = re.compile(r"url|uri|host|addr|target|endpoint|redirect|callback|webhook|proxy|dsn", re.I)
SERVICES = "services:\n  - {name: self, type: tcp, address: '127.0.0.1:1'}\n"
# The API answers oversize input with 413 and a wrong Content-Type with 415: both
# are proper refusals of schema-violating data.
# A signal dated further ahead than AUDIT_MAX_FUTURE_SKEW fits the schema (a date-time
# cannot say "not in the future") and is refused with 422: the one schema-valid refusal.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]

[[operations]]
include-path = "/api/cache/signals"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = [200, 201, 401, 403, 404, 409, 422, 429]
"""
# Set to regenerate the baseline after a reviewed change: the known findings of other
# routes' documents, to be shrunk by their owners; new findings fail the test.
UPDATE = os.environ.get("USDCOP_SCHEMATHESIS_BASELINE_UPDATE") == "1"


def _schema_strings(schema, path=""):
    """(path, property name or format) for every property and string format in a schema."""
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            yield f"{path}.{name}", name
            yield from _schema_strings(sub, f"{path}.{name}")
        if "format" in schema:
            yield path, "format:" + schema["format"]
        for key in ("items", "additionalProperties", "oneOf", "anyOf", "allOf"):
            sub = schema.get(key)
            for item in sub if isinstance(sub, list) else [sub]:
                if isinstance(item, dict):
                    yield from _schema_strings(item, path)


async def test_document_matches_router_and_levels(make_sidecar):
    app = make_sidecar(SERVICES)
    async with running(app) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/api/openapi.json") as resp:
            assert resp.status == 200
            doc = await resp.json()
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented == set(app[ROUTE_INDEX])
    for (method, path), route in app[ROUTE_INDEX].items():
        op = doc["paths"][path][method.lower()]
        assert op["x-auth-level"] == route.level
        assert ("security" in op) == (route.level != "public")
        if route.level in ("write", "admin"):
            assert {} not in op["security"], (method, path)  # never optional
            assert "401" in op["responses"] and "403" in op["responses"]


def test_no_request_field_names_a_host_or_url(make_sidecar):
    doc = build_openapi(make_sidecar(SERVICES)[ROUTES])
    offenders = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if HOSTISH.search(param["name"]) or param.get("schema", {}).get("format") in ("uri", "hostname", "ipv4", "ipv6"):
                    offenders.append((method, path, param["name"]))
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema", {})
            for where, name in _schema_strings(body):
                if HOSTISH.search(name.removeprefix("format:")) and name not in ("format:date-time",):
                    offenders.append((method, path, where or name))
    assert not offenders, offenders
    assert HOSTISH.search("callback_url") and HOSTISH.search("target")  # the net catches these


async def test_core_answers_match_their_schemas(make_sidecar, targets):  # noqa: F811
    app = make_sidecar(f"services:\n  - {{name: api, url: '{targets.url('/healthy')}'}}\n"
                       "  - {name: idle, type: tcp, address: '127.0.0.1:1'}\n")
    async with running(app) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/api/openapi.json") as resp:
            doc = await resp.json()

        async def check(method, path, status, **kw):
            async with http.request(method, base + path, **kw) as resp:
                assert resp.status == status, (method, path, await resp.text())
                body = await resp.json()
            op = doc["paths"][path.split("?")[0]][method.lower()]
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            validator = jsonschema_rs.validator_for({**schema, "components": doc["components"]})
            errors = [e.message for e in validator.iter_errors(body)]
            assert not errors, (method, path, errors)

        await check("GET", "/api/health/services", 200)  # one unknown service in it
        await check("POST", "/api/health/services", 200, json={"service": "api"})
        await check("POST", "/api/health/services", 404, json={"service": "nope"})
        await check("POST", "/api/health/services", 422, json={"service": "api", "extra": 1})
        await check("GET", "/api/health/services", 200)
        await check("POST", "/-/reload", 200)
        await check("GET", "/healthz", 200)
        await check("GET", "/readyz", 200)
        await check("GET", "/probe?service=nope", 404)


async def test_schemathesis_against_a_live_sidecar(tmp_path):
    """Property-based run: bounded (few examples per operation, fixed seed), all checks."""
    services = tmp_path / "services.yaml"
    services.write_text(SERVICES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORTER_", "REDIS_", "POSTGRES_", "AUDIT_"))}
    env.update(LOG_FORMAT="json", LOG_LEVEL="info", EXPORTER_SCHEDULER="off",
               EXPORTER_API_TOKEN="schemathesis-api-token", EXPORTER_ADMIN_TOKEN="schemathesis-admin-token",
               AUDIT_SQLITE_PATH=str(tmp_path / "audit.sqlite3"), AUDIT_SPOOL_DIR=str(tmp_path / "spool"),
               AUDIT_CHECKPOINT_DIR=str(tmp_path / "cp"))
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    proc = Proc([SCRIPT, "serve", "--config", str(services), "--listen", "127.0.0.1:0"], env)
    try:
        proc.wait_line(r"listening on http://([\d.]+):(\d+)")
        port = re.search(r"listening on http://[\d.]+:(\d+)", "".join(proc.lines)).group(1)
        result = subprocess.run(
            [SCHEMATHESIS, "run", f"http://127.0.0.1:{port}/api/openapi.json",
             "-H", "Authorization: Bearer schemathesis-admin-token",
             "--checks", "all", "--max-examples", "10", "--seed", "1", "--workers", "1",
             "--generation-database", "none", "--no-color", "--request-timeout", "10",
             "--baseline", str(BASELINE), *(["--baseline-update"] if UPDATE else [])],
            cwd=tmp_path, capture_output=True, text=True, timeout=180,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        assert proc.proc.poll() is None, "the sidecar died under schemathesis"
    finally:
        proc.stop()
    output = result.stdout + result.stderr
    failures = output[output.find("FAILURES"):] if "FAILURES" in output else output
    assert result.returncode == 0, "\n".join(line[:300] for line in failures.splitlines()[:150])
    assert "Tested:" in output
    known = json.loads(BASELINE.read_text())["entries"]
    core = {f"{method} {path}" for method, path in CORE_RESPONSES}
    assert not [e for e in known if e["operation"] in core], "core routes have no accepted findings"
