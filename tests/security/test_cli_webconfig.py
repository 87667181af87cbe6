"""`serve --web-config`: a bad file stops start-up with exit 2 and the error; a good one
serves HTTPS with the ready line saying so."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.cli.test_serve_process import Proc

pytestmark = pytest.mark.slow

SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent))


def _env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORTER_", "REDIS_", "POSTGRES_"))}
    env.update(LOG_FORMAT="json", AUDIT_SQLITE_PATH=str(tmp_path / "a.sqlite3"),
               AUDIT_SPOOL_DIR=str(tmp_path / "spool"), AUDIT_CHECKPOINT_DIR=str(tmp_path / "cp"),
               EXPORTER_SCHEDULER="off")
    return env


def test_bad_web_config_exits_2_naming_the_problem(tmp_path):
    services = tmp_path / "services.yaml"
    services.write_text("services: []\n")
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: plain-text-password\n")
    result = subprocess.run([SCRIPT, "serve", "--config", str(services), "--listen", "127.0.0.1:0",
                             "--web-config", str(web)], env=_env(tmp_path), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert f"{web}:2: field 'basic_auth_users.alice': expected a bcrypt hash" in result.stderr
    assert "plain-text-password" not in result.stderr + result.stdout


def test_serves_https_from_the_web_config(tmp_path, tls_files):
    services = tmp_path / "services.yaml"
    services.write_text("services: []\n")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {tls_files.cert_file}\n  key_file: {tls_files.key_file}\n")
    proc = Proc([SCRIPT, "serve", "--config", str(services), "--listen", "127.0.0.1:0",
                 "--web-config", str(web)], _env(tmp_path))
    try:
        host, port = proc.wait_line(r"listening on https://([\d.]+):(\d+)").groups()
        ctx = ssl.create_default_context(cafile=str(tls_files.ca_file))
        with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=ctx, timeout=5) as resp:
            assert resp.status == 200
        proc.proc.terminate()
        assert proc.proc.wait(15) == 0
    finally:
        proc.stop()
