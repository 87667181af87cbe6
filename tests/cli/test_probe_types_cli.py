"""`usdcop-exporter probe NAME` for each new check type, against real loopback targets."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.support.dns_server import dns_targets
from tests.support.grpc_server import grpc_target
from tests.support.ws_targets import start_ws_targets

SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.slow


async def _probe(name: str, config: Path) -> tuple[int, dict, str]:
    proc = await asyncio.create_subprocess_exec(SCRIPT, "probe", name, "--config", str(config),
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, json.loads(out), err.decode()


async def test_probe_command_for_each_type(tmp_path):
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(start_ws_targets())
        zone = stack.enter_context(dns_targets())
        rpc = await stack.enter_async_context(grpc_target())
        config = tmp_path / "services.yaml"
        config.write_text(f"""services:
  - name: market-ws
    type: websocket
    url: ws://127.0.0.1:{ws.port}/ticks
    send: '{{"op": "ping"}}'
    expect: pong
  - name: refused-ws
    type: websocket
    url: ws://127.0.0.1:{ws.port}/plain
  - name: zone-dns
    type: dns
    server: {zone.server}
    query_name: trading-api.internal
  - name: pricing-grpc
    type: grpc
    address: {rpc.address}
  - name: broker-tls
    type: tls
    address: localhost:{ws.tls_port}
    tls: {{ca_file: {ws.ca_file}}}
  - name: lo-ping
    type: icmp
    host: 127.0.0.1
  - name: nightly
    type: push
    max_silence: 1h
""")
        for name in ("market-ws", "zone-dns", "pricing-grpc", "broker-tls", "lo-ping"):
            code, health, err = await _probe(name, config)
            assert (code, health["status"]) in ((0, "healthy"), (0, "degraded")), (name, health, err)
            assert "Traceback" not in err
        code, health, _ = await _probe("refused-ws", config)
        assert (code, health["metadata"]["probe"]["reason"]) == (1, "handshake")
        # A push service has nothing to probe: one run observes nothing and says so.
        code, health, _ = await _probe("nightly", config)
        assert (code, health["status"]) == (0, "unknown")
