"""A private redis-server on a free loopback port, for fault tests (stop, freeze, restart).

The machine's shared Redis is never touched: each PrivateRedis runs its own server with no
persistence in a temporary directory. `freeze()` sends SIGSTOP (the port still accepts TCP
connections, nothing answers: what a hung Redis looks like), `thaw()` SIGCONT.

    from tests.support.private_redis import private_redis  # noqa: F401  (the fixture)

or use the class directly: `with PrivateRedis() as server: ... server.url ...`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .tools import free_port, require_tool


class PrivateRedis:
    """A throw-away redis-server: start(), stop(), freeze(), thaw(), restart(), close()."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = shutil.which("redis-server") or "redis-server"
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="usdcop-redis-"))
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (same port as before) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} already running")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.root),
             "--logfile", str(self.log), "--daemonize", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.frozen = False
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} not answering after {timeout}s")
            time.sleep(0.01)

    def ping(self, timeout: float = 0.5) -> bool:
        """True when the server answers PING right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (thawing it first if frozen) and wait for it to exit."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        if self.frozen:
            proc.send_signal(signal.SIGCONT)
            self.frozen = False
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing answers."""
        assert self.process is not None and self.process.poll() is None, "not running"
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def restart(self) -> None:
        """stop() then start() on the same port (empty: nothing is persisted)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the working directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _tail(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def private_redis():
    """A running PrivateRedis of this test's own, removed afterwards."""
    require_tool("redis-server")
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()
