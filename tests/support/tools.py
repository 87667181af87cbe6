"""Finding the real tools the suite drives, and free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket

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
