"""What the command line says: every error of a services file at once, the valid names of
`probe`, the scheduler's count, and the demo blaming only flags the user gave."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from loguru import logger

from exporter.cli import main
from exporter.config.model import Config, ServiceConfig
from exporter.health.checker import HealthChecker
from exporter.health.registry import ServiceRegistry
from tests.e2e import stack as s

MANY_ERRORS = """\
defaults:
  interval: 30
services:
  - name: api
    url: http://127.0.0.1:8001/health
    timeout: 5x
    tls: {verify: no}
  - name: db
    type: postgres
    url: postgresql://127.0.0.1:5432/x
    follow_redirects: true
  - name: web
    url: http://127.0.0.1:8002/health
  - name: web
    url: http://127.0.0.1:8003/health
  - name: queue
    address: 127.0.0.1:9
    type: tcp
    success_threshold: 0
allowed_targets: [10.0.0.0/33]
"""


def check_config(tmp_path, text: str, capsys) -> tuple[int, list[str], str]:
    path = tmp_path / "services.yaml"
    path.write_text(text)
    code = main(["check-config", str(path)])
    captured = capsys.readouterr()
    prefix = f"usdcop-exporter: {path}"
    return code, [line.replace(prefix, "F") for line in captured.err.splitlines()], captured.out


def test_check_config_names_every_error_of_the_file(tmp_path, capsys):
    code, lines, out = check_config(tmp_path, MANY_ERRORS, capsys)
    assert code == 1 and out == ""
    assert lines == [
        "F:2: field 'defaults.interval': expected a duration like 30s, got number 30",
        "F:6: service 'api': field 'timeout': invalid duration '5x': expected a number and a unit"
        " (ms, s, m, h, d), e.g. 250ms, 30s, 2m, 1h, 30d or 1m30s",
        "F:7: service 'api': field 'tls.verify': expected true or false, got no",
        "F:11: service 'db': field 'follow_redirects': does not apply to type postgres (its options: url)",
        "F:14: service 'web': field 'name': duplicate service name (first at line 12)",
        "F:19: service 'queue': field 'success_threshold': must be between 1 and 1000, got 0",
        "F:20: field 'allowed_targets[0]': invalid network '10.0.0.0/33': '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
    ]


def test_check_config_shows_twenty_errors_and_counts_the_rest(tmp_path, capsys):
    services = "".join(f"  - {{name: s{i}, url: http://127.0.0.1:1/, interval: 1}}\n"
                       for i in range(25))
    code, lines, _ = check_config(tmp_path, "services:\n" + services, capsys)
    assert code == 1 and len(lines) == 21
    assert all(f"service 's{i}': field 'interval'" in lines[i] for i in range(20))
    assert lines[20] == "F: 5 more errors not shown"


def test_check_config_counts_services_in_words(tmp_path, capsys):
    one = "services:\n  - {name: api, url: http://127.0.0.1:1/}\n"
    code, lines, out = check_config(tmp_path, one, capsys)
    assert (code, lines) == (0, [])
    assert out.endswith(": ok, 1 service\n")


async def test_the_scheduler_counts_its_services_in_words():
    async def ok():
        return {"success": True, "latency_ms": 1}

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    service = ServiceConfig(name="only", type="python", check_fn=ok, interval=600.0)
    checker = HealthChecker(ServiceRegistry(Config(services=(service,))))
    try:
        await checker.start_monitoring()
    finally:
        await checker.stop_monitoring()
        logger.remove(sink)
    assert "scheduler started with 1 service" in lines


@pytest.mark.slow
def test_probe_of_an_unknown_service_lists_the_valid_names(tmp_path):
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - {name: api, url: http://127.0.0.1:1/}\n"
                    "  - {name: db, type: tcp, address: '127.0.0.1:1'}\n")
    res = subprocess.run([*s.sidecar_command(), "probe", "nope", "--config", str(path)],
                         capture_output=True, text=True, timeout=60, env=s.clean_env())
    assert res.returncode == 2
    assert res.stderr.strip().endswith(f"no service named 'nope' in {path}; its services: api, db")


DEMO_ON = """\
import sys
import exporter.demo.cli as demo
demo.DEFAULT_LISTEN = sys.argv[1]
from exporter.cli import main
sys.exit(main(["demo", *sys.argv[2:]]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("flag_given", [False, True])
def test_demo_names_listen_only_when_it_was_given(tmp_path, flag_given):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        # The default address is the taken one: the demo's default made to collide.
        args = [sys.executable, "-c", DEMO_ON, address, "--ports", "0,0,0,0", "--no-incidents"]
        if flag_given:
            args += ["--listen", address]
        res = subprocess.run(args, capture_output=True, text=True, timeout=60,
                             env=s.clean_env(TMPDIR=str(tmp_path)))
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    if flag_given:
        assert last.startswith(f"usdcop-exporter demo: --listen: cannot listen on {address}: ")
    else:
        assert last.startswith(f"usdcop-exporter demo: cannot listen on {address}: ")
        assert "--listen:" not in res.stderr
        assert last.endswith("(the default; choose another with --listen HOST:PORT, "
                             "port 0 picks a free one)")
