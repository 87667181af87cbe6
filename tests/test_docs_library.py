"""Every ```python example of docs/library.md's engine-side guide runs, in one engine
process, against a real sidecar (EXPORTER_URL), Redis (REDIS_URL) and Postgres
(POSTGRES_URL); afterwards the sidecar shows what the examples forwarded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys

import pytest

from exporter.app import create_app
from exporter.settings import Settings
from tests.ops import artefacts as a
from tests.support.tools import free_port

GUIDE = a.REPO / "docs" / "library.md"
HEADING = "## The engine-side guide"
TOKEN = "docs-example-token"
RUNNER = """
import ast, asyncio, json, sys

blocks = json.load(sys.stdin)


async def main():
    for number, source in enumerate(blocks, 1):
        code = compile(source, f"<docs/library.md example {number}>", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, {"__name__": "__main__"})
        if asyncio.iscoroutine(result):
            await result
        print(f"example {number} ok", flush=True)


asyncio.run(main())
"""


def guide_examples() -> list[str]:
    text = GUIDE.read_text()
    section = text[text.index(HEADING):]
    section = re.split(r"\n## (?!#)", section[len(HEADING):])[0]  # up to the next section
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_guide_has_an_example_for_each_part():
    examples = "\n".join(guide_examples())
    for call in ("setup_logging()", "record_latency(", "perf.measure(", "set_latest(",
                 "add_to_history(", "get_signal_stats(", "set_financial_metrics(",
                 "set_position(", "set_custom_metric(", "get_audit_trail(",
                 "start_monitoring()", "stop_monitoring()"):
        assert call in examples, call


@pytest.fixture
async def sidecar(aiohttp_server, registry, tmp_path):
    config = tmp_path / "services.yaml"
    config.write_text("services: []\n")
    settings = Settings(
        config=str(config), scheduler=False, api_token=TOKEN, listen_host="127.0.0.1",
        audit_sqlite_path=str(tmp_path / "sidecar-audit.sqlite3"),
        audit_spool_dir=str(tmp_path / "sidecar-spool"),
        audit_checkpoint_dir=str(tmp_path / "checkpoints"),
    )
    return await aiohttp_server(create_app(settings, registry), host="127.0.0.1", port=free_port())


@pytest.mark.slow
async def test_every_example_runs_in_an_engine(sidecar, registry, redis_url, redis_namespace,
                                               pg_dsn, tmp_path):
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        EXPORTER_URL=str(sidecar.make_url("")).rstrip("/"), EXPORTER_API_TOKEN=TOKEN,
        EXPORTER_SERVICE_NAME="trading-engine", REDIS_URL=redis_url,
        REDIS_NAMESPACE=redis_namespace, POSTGRES_URL=pg_dsn,
        AUDIT_SPOOL_DIR=str(tmp_path / "engine-spool"), LOG_FORMAT="json", LOG_LEVEL="info",
    )
    blocks = guide_examples()
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", RUNNER], input=json.dumps(blocks), env=env,
        cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"example {i} ok" for i in range(1, len(blocks) + 1)]
    logs = [json.loads(line) for line in done.stderr.splitlines()]
    (info,) = [line for line in logs if line["msg"] == "Processing signal"]
    assert info["context"] == {"signal_id": "sig_123"}
    assert any(line["msg"].startswith("audit trail: Postgres") for line in logs)
    assert not (tmp_path / "usdcop-audit.sqlite3").exists()
    # What the engine forwarded (sent at its exit) is in the sidecar's metrics.
    labels = {"service": "trading-engine", "operation": "process_signal"}
    assert registry.get_sample_value("usdcop_operation_latency_seconds_count", labels) == 2
    assert registry.get_sample_value("usdcop_operation_errors_total", labels) == 1
    assert registry.get_sample_value(
        "usdcop_operation_latency_seconds_count",
        {"service": "trading-engine", "operation": "model_inference"}) == 1
    hits = registry.get_sample_value("usdcop_cache_requests_total",
                                     {"cache": "signals", "result": "hit"})
    assert hits >= 3
