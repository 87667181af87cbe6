"""The console script as a real process: ready line, /metrics, SIGHUP reload, SIGTERM exit."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent))
READY = re.compile(r"listening on http://([\d.]+):(\d+)")


class Proc:
    """A running `usdcop-exporter serve` with its stderr collected line by line."""

    def __init__(self, args, env):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_line(self, pattern, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r}; got:\n{''.join(self.lines)}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORTER_", "REDIS_", "POSTGRES_"))}
    env.update(LOG_FORMAT="json", AUDIT_SQLITE_PATH=str(tmp_path / "a.sqlite3"),
               AUDIT_SPOOL_DIR=str(tmp_path / "spool"), AUDIT_CHECKPOINT_DIR=str(tmp_path / "cp"))
    return env


def test_serve_reload_and_stop(tmp_path, env):
    assert SCRIPT, "console script not installed"
    cfg = tmp_path / "services.yaml"
    cfg.write_text("services:\n  - name: one\n    type: tcp\n    address: 127.0.0.1:1\n")
    proc = Proc([SCRIPT, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"], env)
    try:
        host, port = proc.wait_line(READY.pattern).groups()
        base = f"http://{host}:{port}"
        status, text = get(base + "/metrics")
        assert status == 200 and 'usdcop_service_info{critical="true",service="one",type="tcp"} 1.0' in text
        # a bad file keeps the old configuration
        cfg.write_text("services:\n  - name: one\n    type: tcp\n    addres: 127.0.0.1:1\n")
        proc.proc.send_signal(signal.SIGHUP)
        proc.wait_line("reload of .* failed")
        text = get(base + "/metrics")[1]
        assert "usdcop_config_last_reload_successful 0.0" in text
        assert 'service="one"' in text
        # a good file is taken
        cfg.write_text("services:\n  - name: two\n    type: tcp\n    address: 127.0.0.1:1\n")
        proc.proc.send_signal(signal.SIGHUP)
        proc.wait_line("reloaded ")
        text = get(base + "/metrics")[1]
        assert "usdcop_config_last_reload_successful 1.0" in text
        assert 'usdcop_service_info{critical="true",service="two",type="tcp"} 1.0' in text
        assert 'service="one"' not in text
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=15) == 0
    finally:
        proc.stop()
    # JSON log lines, one object each
    records = [json.loads(line) for line in proc.lines if line.startswith("{")]
    assert any(r["msg"].startswith("listening on http://") for r in records)


def test_bad_config_exits_2_with_the_error(tmp_path, env):
    cfg = tmp_path / "services.yaml"
    cfg.write_text("services:\n  - name: no\n")
    out = subprocess.run([SCRIPT, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "services.yaml" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_a_python_check_that_cannot_be_imported_stops_serve_and_check_config(tmp_path, env):
    cfg = tmp_path / "services.yaml"
    cfg.write_text("services:\n  - name: model\n    type: python\n    check: 'no.such:fn'\n")
    where = f"{cfg}:2: service 'model': field 'check': check 'no.such:fn': cannot import no.such"
    out = subprocess.run([SCRIPT, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1  # the file is valid, the code it names is missing
    assert where in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([SCRIPT, "check-config", str(cfg)], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1
    assert where in out.stderr and "Traceback" not in out.stderr


def test_bad_setting_exits_2_naming_the_variable(tmp_path, env):
    env["EXPORTER_SHARD"] = "3/2"
    out = subprocess.run([SCRIPT, "serve", "--listen", "127.0.0.1:0"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "EXPORTER_SHARD" in out.stderr and "Traceback" not in out.stderr


def test_check_config(tmp_path, env):
    good = tmp_path / "good.yaml"
    good.write_text("services: []\n")
    out = subprocess.run([SCRIPT, "check-config", str(good)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - name: x\n    url: http://127.0.0.1:1/\n    colour: red\n")
    out = subprocess.run([SCRIPT, "check-config", str(bad)], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert "bad.yaml:4" in out.stderr and "colour" in out.stderr and "Traceback" not in out.stderr


def test_shipped_services_file_checks(env):
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([SCRIPT, "check-config", str(root / "services.yaml")], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_probe_command_exit_codes(tmp_path, env):
    cfg = tmp_path / "services.yaml"
    cfg.write_text("services:\n  - name: closed\n    type: tcp\n    address: 127.0.0.1:1\n    timeout: 2s\n")
    out = subprocess.run([SCRIPT, "probe", "closed", "--config", str(cfg)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stderr
    health = json.loads(out.stdout)
    assert health["status"] == "unhealthy" and health["metadata"]["probe"]["reason"] == "connect"
    out = subprocess.run([SCRIPT, "probe", "missing", "--config", str(cfg)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "missing" in out.stderr


def test_help_on_every_command(env):
    for args in (["--help"], ["serve", "--help"], ["check-config", "--help"], ["probe", "--help"]):
        out = subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True)
        assert out.returncode == 0 and "usage:" in out.stdout


def test_probe_decides_from_one_probe_whatever_the_thresholds(tmp_path, env):
    cfg = tmp_path / "services.yaml"
    cfg.write_text("services:\n  - name: closed\n    type: tcp\n    address: 127.0.0.1:1\n"
                   "    failure_threshold: 3\n    timeout: 2s\n")
    env["EXPORTER_LISTEN"] = "not-a-listen-address"  # serve's settings do not concern probe
    out = subprocess.run([SCRIPT, "probe", "closed", "--config", str(cfg)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["status"] == "unhealthy"


@pytest.mark.slow
def test_checkpoint_dir_flag_beats_the_variable(tmp_path, env):
    cfg = tmp_path / "services.yaml"
    cfg.write_text("services: []\n")
    chosen = tmp_path / "chosen"
    proc = Proc([SCRIPT, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0",
                 "--checkpoint-dir", str(chosen)], env)
    try:
        host, port = proc.wait_line(READY.pattern).groups()
        event = json.dumps({"event_type": "SIGNAL_GENERATED", "symbol": "USDCOP",
                            "data": {"signal_id": "s1"}}).encode()
        request = urllib.request.Request(f"http://{host}:{port}/api/audit/signals", data=event,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 201
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=15) == 0
    finally:
        proc.stop()
    assert [p.name for p in chosen.glob("checkpoint-*.json")], "no checkpoint in --checkpoint-dir"
    assert not (tmp_path / "cp").exists(), "AUDIT_CHECKPOINT_DIR was used instead"


@pytest.mark.parametrize(("flag", "loop"), [((), "uvloop"), (("--loop", "asyncio"), "asyncio")])
def test_event_loop_is_logged_and_exported(tmp_path, env, flag, loop):
    cfg = tmp_path / "services.yaml"
    cfg.write_text("services: []\n")
    proc = Proc([SCRIPT, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0", *flag], env)
    try:
        host, port = proc.wait_line(READY.pattern).groups()
        assert proc.wait_line(r"event loop: (\w+)").group(1) == loop
        text = get(f"http://{host}:{port}/metrics")[1]
        line = next(x for x in text.splitlines() if x.startswith("usdcop_build_info{"))
        assert f'loop="{loop}"' in line and line.endswith(" 1.0"), line
    finally:
        proc.stop()


def test_unknown_loop_is_a_usage_error(tmp_path, env):
    out = subprocess.run([SCRIPT, "serve", "--loop", "tokio", "--listen", "127.0.0.1:0"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--loop" in out.stderr and "Traceback" not in out.stderr
