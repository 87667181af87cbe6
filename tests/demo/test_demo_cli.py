"""`usdcop-exporter demo` as a real process: banner, life on /metrics, clean stop, errors."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess

import aiohttp
import psycopg
import pytest

from exporter.cli import main
from exporter.demo.runner import embedded_sidecar
from exporter.settings import Settings
from tests.e2e import stack as s

pytestmark = pytest.mark.slow

SIDECAR = re.compile(r"sidecar\s+(http://127\.0\.0\.1:\d+)/metrics")
FAST = ["--ports", "0,0,0,0", "--listen", "127.0.0.1:0", "--tick", "200ms",
        "--probe-interval", "500ms", "--slow-delay", "200ms", "--seed", "5",
        "--incident-cycle", "15s"]  # halt at 1 s, resumed at 4 s


def _run(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*s.sidecar_command(), "demo", *args], capture_output=True, text=True,
                          timeout=60, env=s.clean_env(TMPDIR=str(tmp_path), **env))


def _demo(tmp_path, args: list[str], **env: str) -> s.Process:
    return s.start("demo", [*s.sidecar_command(), "demo", *args], tmp_path,
                   s.clean_env(TMPDIR=str(tmp_path / "tmp"), LOG_FORMAT="text",
                               MIRROR_INTERVAL="500ms", **env))


async def _metrics(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(base + "/metrics") as resp:
        return await resp.text()


def test_help_describes_the_demo(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("healthy", "slow", "flaky", "WebSocket", "--sidecar", "DEMO_SIDECAR", "DEMO_HOST",
                 "EXPORTER_URL", "SIGTERM"):
        assert word in out


@pytest.mark.parametrize(("args", "message"), [
    (["--ports", "1,2,3"], "argument --ports: expected 4 port numbers"),
    (["--ports", "1,2,3,99999"], "argument --ports: ports are 0 to 65535"),
    (["--ports", "8001,8001,8000,8080"], "argument --ports: each service needs its own port"),
    (["--tick", "soon"], "argument --tick:"),
    (["--tick", "0"], "argument --tick: must be between 50ms and 1h"),
    (["--symbols", "usd"], "argument --symbols: expected 1 to 10 symbols"),
    (["--seed", "-1"], "argument --seed: expected a whole number"),
    (["--incident-cycle", "2h"], "argument --incident-cycle: must be between 50ms and 1h"),
])
def test_bad_flags_exit_2_naming_the_flag(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_listen_exits_2_naming_it(tmp_path):
    res = _run(["--listen", "nowhere"], tmp_path)
    assert res.returncode == 2 and "--listen: invalid value 'nowhere'" in res.stderr


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--sidecar", "none"], {}, "--sidecar: expected embedded or external, got 'none'"),
    ([], {"DEMO_SIDECAR": "sometimes"}, "DEMO_SIDECAR: expected embedded or external"),
    (["--host", "no such host!"], {}, "--host: invalid address 'no such host!'"),
    ([], {"DEMO_HOST": "a b"}, "DEMO_HOST: invalid address 'a b'"),
])
def test_bad_mode_or_host_exits_2_naming_it(tmp_path, args, env, message):
    res = _run([*args, "--ports", "0,0,0,0"], tmp_path, **env)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_an_external_sidecar_needs_exporter_url_and_redis(tmp_path):
    res = _run(["--ports", "0,0,0,0"], tmp_path, DEMO_SIDECAR="external")
    assert res.returncode == 2, res.stderr
    assert "EXPORTER_URL: required with an external sidecar" in res.stderr
    res = _run(["--sidecar", "external", "--ports", "0,0,0,0"], tmp_path,
               EXPORTER_URL="http://127.0.0.1:9")
    assert res.returncode == 2 and "REDIS_URL: required with an external sidecar" in res.stderr
    assert not list(tmp_path.iterdir()), "nothing left behind"


def test_a_taken_port_exits_2_naming_the_service(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = _run(["--ports", f"0,{port},0,0", "--listen", "127.0.0.1:0"], tmp_path)
    assert res.returncode == 2
    assert f"ml-analytics (slow): cannot bind 127.0.0.1:{port}" in res.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_demo_shows_life_and_stops_cleanly(tmp_path, stop_signal):
    (tmp_path / "tmp").mkdir()
    demo = _demo(tmp_path, FAST)
    try:
        m = await s.until(lambda: SIDECAR.search(demo.log_text()), "the demo's banner", 30,
                          (demo,))
        base = m.group(1)
        async with aiohttp.ClientSession() as session:
            wanted = ['usdcop_signal_price{symbol="USDCOP"}',
                      'usdcop_service_status{service="trading-api",status="healthy"} 1.0',
                      'usdcop_service_status{service="ml-analytics",status="degraded"} 1.0',
                      'usdcop_service_status{service="websocket",status="healthy"} 1.0',
                      'usdcop_service_probe_phase_seconds{phase="first_message",service="websocket"}',
                      'usdcop_operation_latency_seconds_count{operation="generate_signal",'
                      'service="trading-engine"}',
                      'usdcop_audit_events_total{event_type="SIGNAL_GENERATED",outcome="stored"}',
                      'usdcop_signal_price{symbol="EURCOP"}', "usdcop_pnl ",
                      'usdcop_custom_metric{name="fx_spread_bps"}']

            async def alive() -> bool:
                text = await _metrics(session, base)
                return all(w in text for w in wanted)

            await s.until(alive, "signals, statuses, latency and audit on /metrics", 30, (demo,),
                          describe=lambda: demo.log_text()[-2000:])

            async def halted_and_resumed() -> bool:
                async with session.get(base + "/api/audit/signals") as resp:
                    events = (await resp.json())["events"]
                return {("TRADING_HALTED", "demo-risk-desk"), ("TRADING_RESUMED", "demo-risk-desk")
                        } <= {(e["event_type"], e["actor"]) for e in events}

            await s.until(halted_and_resumed, "the scripted halt and resume in the audit trail",
                          30, (demo,), describe=lambda: demo.log_text()[-2000:])
    finally:
        demo.popen.send_signal(stop_signal)
        code = await asyncio.to_thread(demo.popen.wait, 20)
    assert code == 0, demo.log_text()[-3000:]
    assert "stopped" in demo.log_text()
    assert not list((tmp_path / "tmp").iterdir()), "the demo removes its own files"


async def test_external_mode_writes_for_an_external_sidecar(tmp_path, redis_url,
                                                              redis_namespace, pg_dsn):
    """What the compose demo profile runs (DEMO_SIDECAR=external; DEMO_HOST there is 0.0.0.0): the
    engine writes to Redis and Postgres and forwards latency records to EXPORTER_URL."""
    (tmp_path / "tmp").mkdir()
    config = tmp_path / "services.yaml"
    config.write_text("services: []\n")
    settings = Settings(config=str(config), listen_host="127.0.0.1", listen_port=0,
                        redis_url=redis_url, redis_namespace=redis_namespace,
                        mirror_interval=0.2, mirror_symbols=("USDCOP",),
                        audit_sqlite_path=str(tmp_path / "a.sqlite3"),
                        audit_spool_dir=str(tmp_path / "spool"),
                        audit_checkpoint_dir=str(tmp_path / "checkpoints"))
    async with embedded_sidecar(settings) as (_, base), aiohttp.ClientSession() as session:
        demo = _demo(tmp_path, FAST, DEMO_SIDECAR="external", DEMO_HOST="127.0.0.1",
                     EXPORTER_URL=base, REDIS_URL=redis_url,
                     REDIS_NAMESPACE=redis_namespace, POSTGRES_URL=pg_dsn,
                     AUDIT_SPOOL_DIR=str(tmp_path / "engine-spool"))
        try:
            wanted = ['usdcop_signal_price{symbol="USDCOP"}',
                      'usdcop_position_quantity{symbol=',
                      'usdcop_operation_latency_seconds_count{operation="generate_signal",'
                      'service="trading-engine"}',
                      'usdcop_operation_latency_seconds_count{operation="fetch_quote",'
                      'service="market-data"}']

            async def mirrored() -> bool:
                text = await _metrics(session, base)
                return all(w in text for w in wanted)

            await s.until(mirrored, "the engine's state on the external sidecar", 30, (demo,),
                          describe=lambda: demo.log_text()[-2000:])
        finally:
            demo.popen.send_signal(signal.SIGTERM)
            # In a thread: the sidecar answering the demo's last records runs on this loop.
            code = await asyncio.to_thread(demo.popen.wait, 20)
    assert code == 0, demo.log_text()[-3000:]
    assert "(external)" in demo.log_text()
    with psycopg.connect(pg_dsn) as conn:
        actors = conn.execute("SELECT actor, count(*) FROM usdcop_audit.events GROUP BY 1"
                              ).fetchall()
    assert dict(actors).get("trading-engine", 0) > 0, actors
