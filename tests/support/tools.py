"""Finding the real tools the suite drives, and free loopback ports."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_tool(name: str) -> str:
    """Path of a command; skipped when missing, except under CI=true where it fails."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} is required under CI=true; scripts/test.sh installs it")
    pytest.skip(f"{name} not installed (scripts/test.sh installs it)")


def postgres_bin() -> Path:
    """The folder of initdb/pg_ctl: $PG_BIN, else the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]) if found else Path("/usr/lib/postgresql/15/bin")


def require_initdb() -> Path:
    """postgres_bin(), when it has initdb; skipped otherwise, except under CI=true (fails)."""
    folder = postgres_bin()
    if (folder / "initdb").exists():
        return folder
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"initdb is required under CI=true (looked in {folder}); scripts/test.sh installs postgresql")
    pytest.skip(f"no initdb under {folder}")


@contextlib.contextmanager
def ready_server(args: list[str], port: int, log_path: Path, limit: float = 60.0):
    """Run a Prometheus-family server (`args`) listening on 127.0.0.1:`port` until its
    /-/ready answers; yields its base URL; stops it afterwards. Its stderr goes to
    `log_path`, shown when it dies or is not ready within `limit` seconds."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + limit
            while True:
                try:
                    urllib.request.urlopen(base + "/-/ready", timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(Path(log_path).read_text()) from None
                    time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
