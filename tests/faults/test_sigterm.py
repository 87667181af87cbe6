"""SIGTERM while clients write audit events, latency records and scrape: the sidecar stops
cleanly (exit 0), answers no 500, and every event it acknowledged is in the trail, whose
chain still verifies."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.cli.test_serve_process import Proc

pytestmark = pytest.mark.slow

SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent))
WORKERS = 8
ACKED_BEFORE_SIGTERM = 300


def _env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORTER_", "REDIS_", "POSTGRES_", "AUDIT_"))}
    env.update(LOG_FORMAT="json", AUDIT_SQLITE_PATH=str(tmp_path / "audit.sqlite3"),
               AUDIT_SPOOL_DIR=str(tmp_path / "spool"), AUDIT_CHECKPOINT_DIR=str(tmp_path / "cp"))
    return env


async def test_sigterm_under_load_loses_no_acknowledged_event(tmp_path):
    services = tmp_path / "services.yaml"
    services.write_text("services:\n  - {name: self, type: tcp, address: '127.0.0.1:1', interval: 1s}\n")
    env = _env(tmp_path)
    proc = Proc([SCRIPT, "serve", "--config", str(services), "--listen", "127.0.0.1:0"], env)
    acked: set[str] = set()
    codes: dict[int, int] = {}
    errors = 0
    try:
        host, port = proc.wait_line(r"listening on http://([\d.]+):(\d+)").groups()
        base = f"http://{host}:{port}"
        enough = asyncio.Event()

        async def worker(i: int) -> None:
            nonlocal errors
            async with aiohttp.ClientSession() as http:
                n = 0
                while True:
                    n += 1
                    try:
                        if n % 10 == 0:
                            async with http.get(base + "/metrics") as resp:
                                await resp.read()
                                codes[resp.status] = codes.get(resp.status, 0) + 1
                            continue
                        if n % 10 == 5:
                            record = {"service": "desk", "operation": f"op{i}", "latency_ms": n}
                            async with http.post(base + "/api/health/latency", json=record) as resp:
                                await resp.read()
                                codes[resp.status] = codes.get(resp.status, 0) + 1
                            continue
                        event_id = str(uuid.uuid4())
                        event = {"event_type": "TRADE_EXECUTED", "event_id": event_id, "symbol": "USDCOP",
                                 "data": {"trade_id": f"t-{i}-{n}", "price": 4100.5, "quantity": 1}}
                        async with http.post(base + "/api/audit/signals", json=event) as resp:
                            await resp.read()
                            codes[resp.status] = codes.get(resp.status, 0) + 1
                            if resp.status in (201, 202):
                                acked.add(event_id)
                                if len(acked) >= ACKED_BEFORE_SIGTERM:
                                    enough.set()
                    except (aiohttp.ClientError, ConnectionError):
                        errors += 1
                        if proc.proc.poll() is not None:
                            return  # the sidecar is gone: stop
                        await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(worker(i)) for i in range(WORKERS)]
        await asyncio.wait_for(enough.wait(), 60)
        proc.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.proc.wait, 15)
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
        assert code == 0, "".join(proc.lines[-20:])
    finally:
        proc.stop()

    assert codes.get(500, 0) == 0 and codes.get(502, 0) == 0, codes
    export = tmp_path / "export.jsonl"
    result = subprocess.run([SCRIPT, "audit", "export", "--output", str(export)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    stored = [json.loads(line) for line in export.read_text().splitlines() if line.strip()]
    stored_ids = {e["event_id"] for e in stored}
    lost = acked - stored_ids
    assert not lost, f"{len(lost)} acknowledged events lost"
    assert len(stored_ids) == len(stored)  # never stored twice
    verify = subprocess.run([SCRIPT, "audit", "verify", "--file", str(export)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(f"\nSIGTERM under load: {len(acked)} events acknowledged, {len(stored)} stored, "
          f"0 lost; answers {dict(sorted(codes.items()))}; {errors} client-side connection errors")
