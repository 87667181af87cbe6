"""Real `usdcop-exporter serve` processes for the scale-out tests, and a tiny HTTP client."""

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
import urllib.error
import urllib.request
from pathlib import Path

SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent))
READY = re.compile(r"listening on http://([\d.]+):(\d+)")
_DROP = ("EXPORTER_", "REDIS_", "POSTGRES_", "AUDIT_", "MIRROR_", "LOG_")


def clean_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any sidecar setting, plus embedded stores under `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env.update(LOG_FORMAT="json", LOG_LEVEL="info",
               AUDIT_SQLITE_PATH=str(workdir / "audit.sqlite3"),
               AUDIT_SPOOL_DIR=str(workdir / "spool"),
               AUDIT_CHECKPOINT_DIR=str(workdir / "checkpoints"))
    env.update(extra)
    return env


class Sidecar:
    """One sidecar process; its stderr is collected line by line until it exits."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        assert SCRIPT, "the usdcop-exporter console script is not installed in this venv"
        self.lines: list[str] = []
        self.proc = subprocess.Popen([SCRIPT, "serve", "--listen", "127.0.0.1:0", *args], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base = ""

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_ready(self, timeout: float = 30.0) -> Sidecar:
        """Wait for the ready line; the base URL is then known."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := READY.search(line):
                    self.base = f"http://{match.group(1)}:{match.group(2)}"
                    return self
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError("sidecar not ready:\n" + "".join(self.lines[-30:]))

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not stop in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def get(self, path: str) -> tuple[int, object]:
        """GET → (status, JSON or text)."""
        return request("GET", self.base + path)

    def post(self, path: str, body: object) -> tuple[int, object]:
        """POST JSON → (status, JSON or text)."""
        return request("POST", self.base + path, body)


def request(method: str, url: str, body: object = None, timeout: float = 20.0) -> tuple[int, object]:
    """One HTTP request → (status, parsed JSON when the answer is JSON, else text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        status, raw, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
    text = raw.decode()
    return status, json.loads(text) if "json" in ctype else text


def series_services(metrics_text: str, metric: str) -> set[str]:
    """The `service` label values of one metric in a text exposition."""
    return set(re.findall(rf'^{metric}\{{[^}}]*service="([^"]+)"', metrics_text, re.M))


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll `predicate` (every 50 ms) until it returns something true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
