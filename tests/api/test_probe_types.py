"""GET /probe for every check type on a real sidecar against real loopback targets:
blackbox_exporter's names, `promtool check metrics` clean, and `debug=true` showing the
probe's steps and decision without a secret."""

from __future__ import annotations

import subprocess
from contextlib import AsyncExitStack

import pytest

from tests.api.conftest import services_yaml
from tests.support.dns_server import dns_targets
from tests.support.grpc_server import NOT_SERVING, grpc_target
from tests.support.tools import require_tool
from tests.support.ws_targets import start_ws_targets

SECRET = "s3cret-canary-77"


@pytest.fixture
async def probe_sidecar(aiohttp_client, make_app, target):
    """A sidecar whose services cover every check type, each on a real loopback target."""
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(start_ws_targets())
        zone = stack.enter_context(dns_targets())
        rpc = await stack.enter_async_context(grpc_target())
        await rpc.set("pricing.Halted", NOT_SERVING)
        extra = f"""
  - name: http-secret
    url: http://127.0.0.1:{target.port}/ok
    headers: {{Authorization: "Bearer {SECRET}"}}
  - name: market-ws
    type: websocket
    url: ws://127.0.0.1:{ws.port}/ticks?token={SECRET}
    headers: {{Authorization: "Bearer {SECRET}"}}
    send: '{{"op": "ping"}}'
    expect: '"(pong|tick)"'
  - name: market-wss
    type: websocket
    url: wss://localhost:{ws.tls_port}/ticks
    tls: {{ca_file: {ws.ca_file}}}
  - name: plain-200-ws
    type: websocket
    url: ws://127.0.0.1:{ws.port}/plain
  - name: zone-dns
    type: dns
    server: {zone.server}
    query_name: trading-api.internal
    expect_answer: 'IN\\s+A\\s+10\\.'
  - name: zone-nxdomain
    type: dns
    server: {zone.server}
    query_name: gone.internal
    transport: tcp
  - name: broker-tls
    type: tls
    address: localhost:{ws.tls_port}
    tls: {{ca_file: {ws.ca_file}}}
    conditions: ["[CERTIFICATE_EXPIRATION] > 14d"]
  - name: expired-tls
    type: tls
    address: localhost:{ws.expired_port}
    tls: {{ca_file: {ws.ca_file}}}
  - name: pricing-grpc
    type: grpc
    address: {rpc.address}
  - name: halted-grpc
    type: grpc
    address: {rpc.address}
    grpc_service: pricing.Halted
  - name: loopback-ping
    type: icmp
    host: 127.0.0.1
    count: 2
  - name: nightly
    type: push
    max_silence: 1h
"""
        app, _ = make_app(services_yaml(target, extra))
        client = await aiohttp_client(app)
        client.extra = {"ws": ws}
        yield client


def promtool_clean(text: str) -> None:
    promtool = require_tool("promtool")
    out = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert out.returncode == 0 and not out.stdout and not out.stderr, out.stdout + out.stderr


CASES = {
    # service: (success, lines the metrics hold, words the debug log holds)
    "http-secret": (True, ["probe_http_status_code 200", "probe_http_duration_seconds{phase=\"connect\"}"],
                    ["request sent: GET", "HTTP 200", "decision: success"]),
    "market-ws": (True, ['usdcop_probe_phase_duration_seconds{phase="handshake"}',
                         'usdcop_probe_phase_duration_seconds{phase="first_message"}',
                         "probe_http_status_code 101", "probe_dns_lookup_time_seconds"],
                  ["resolving 127.0.0.1", "connected to 127.0.0.1", "upgrade answer: HTTP 101",
                   "matched expect", "decision: success"]),
    "market-wss": (True, ['usdcop_probe_phase_duration_seconds{phase="tls"}',
                          "probe_ssl_earliest_cert_expiry", 'probe_tls_version_info{version="TLS 1.3"} 1.0'],
                   ["TLS handshake with server name localhost", "TLS TLSv1.3 established",
                    "decision: success"]),
    "plain-200-ws": (False, ["probe_http_status_code 200"],
                     ["upgrade answer: HTTP 200", "decision: failure, reason handshake"]),
    "zone-dns": (True, ['probe_dns_duration_seconds{phase="request"}', "probe_dns_answer_rrs 1.0",
                        "probe_dns_query_succeeded 1.0", "probe_dns_lookup_time_seconds"],
                 ["resolving 127.0.0.1", "over udp for trading-api.internal A", "rcode NOERROR",
                  "answer record: trading-api.internal. 60 IN A 10.0.0.5", "decision: success"]),
    "zone-nxdomain": (False, ["probe_dns_answer_rrs 0.0", "probe_dns_query_succeeded 1.0"],
                      ["over tcp", "decision: failure, reason rcode: rcode NXDOMAIN"]),
    "broker-tls": (True, ["probe_ssl_earliest_cert_expiry", 'probe_tls_version_info{version="TLS 1.3"} 1.0',
                          'usdcop_probe_phase_duration_seconds{phase="tls"}'],
                   ["connected to 127.0.0.1", "TLS TLSv1.3 established",
                    "condition [CERTIFICATE_EXPIRATION] > 14d: holds", "decision: success"]),
    "expired-tls": (False, ['usdcop_probe_phase_duration_seconds{phase="tls"}'],
                    ["decision: failure, reason tls", "certificate has expired"]),
    "pricing-grpc": (True, ['probe_grpc_healthcheck_response{serving_status="SERVING"} 1.0',
                            'probe_grpc_duration_seconds{phase="check"}', "probe_grpc_status_code 0.0",
                            "probe_grpc_ssl 0.0"],
                     ["opening a gRPC channel", "serving status SERVING", "decision: success"]),
    "halted-grpc": (False, ['probe_grpc_healthcheck_response{serving_status="NOT_SERVING"} 1.0'],
                    ["decision: failure, reason status: serving status NOT_SERVING"]),
    "loopback-ping": (True, ['probe_icmp_duration_seconds{phase="rtt"}', "probe_ip_protocol 4.0",
                             "usdcop_probe_icmp_loss_ratio 0.0"],
                      ["sending 2 echo request(s) to 127.0.0.1", "request 1: reply in",
                       "decision: success"]),
    "nightly": (False, [], ["push service", "no report has arrived yet", "decision: failure, reason silence"]),
}


PHASES_SHOWN = {
    "market-ws": ("resolve", "connect", "handshake", "first_message"),
    "market-wss": ("resolve", "connect", "tls", "handshake"),
    "zone-dns": ("resolve", "query"),
    "broker-tls": ("resolve", "connect", "tls"),
    "pricing-grpc": ("resolve", "connect", "check"),
    "loopback-ping": ("resolve", "rtt"),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_probe_and_debug_for_each_type(probe_sidecar, name):
    success, metric_lines, words = CASES[name]
    resp = await probe_sidecar.get(f"/probe?service={name}")
    assert resp.status == 200
    text = await resp.text()
    assert f"probe_success {int(success)}" in text
    for line in metric_lines:
        assert line in text, (line, text)
    promtool_clean(text)
    debug = await probe_sidecar.get(f"/probe?service={name}&debug=true")
    assert debug.status == 200 and debug.content_type == "text/plain"
    body = await debug.text()
    logs, sep, metrics = body.partition("\n\nMetrics that would have been returned:\n")
    assert sep and logs.startswith("Logs for the probe:\n"), body
    assert f"probing service {name}" in logs
    for phase in PHASES_SHOWN.get(name, ()):
        assert f" {phase} 0." in " " + logs.split("phases: ", 1)[1].split("\n", 1)[0], (phase, logs)
    for word in words:
        assert word in logs, (word, logs)
    assert f"probe_success {int(success)}" in metrics
    promtool_clean(metrics)
    assert SECRET not in body


async def test_debug_must_be_true_or_false(probe_sidecar):
    resp = await probe_sidecar.get("/probe?service=market-ws&debug=yes")
    assert resp.status == 400 and (await resp.json())["field"] == "debug"
    assert probe_sidecar.extra["ws"].upgrades == 0


async def test_new_phases_and_icmp_loss_reach_metrics(probe_sidecar, registry):
    for name in ("loopback-ping", "market-ws", "zone-dns", "pricing-grpc"):
        resp = await probe_sidecar.post("/api/health/services", json={"service": name})
        assert (await resp.json())["status"] in ("healthy", "degraded"), name
    text = await (await probe_sidecar.get("/metrics")).text()
    assert 'usdcop_probe_icmp_loss_ratio{service="loopback-ping"} 0.0' in text
    for phase, service in (("rtt", "loopback-ping"), ("handshake", "market-ws"),
                           ("first_message", "market-ws"), ("query", "zone-dns"), ("check", "pricing-grpc")):
        assert f'usdcop_service_probe_phase_seconds{{phase="{phase}",service="{service}"}}' in text
    # The generic rendering agrees with the fast one.
    assert registry.get_sample_value("usdcop_probe_icmp_loss_ratio", {"service": "loopback-ping"}) == 0.0
    promtool_clean(text)
