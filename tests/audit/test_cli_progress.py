"""`audit verify` and `audit export` show a progress bar on a terminal and stay quiet
elsewhere: real processes, stderr on a pseudo-terminal or on a pipe."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess

import pytest

from exporter.progress import Progress
from tests.e2e import stack as s

from .test_cli import fill

EVENTS = 4500  # more than two of verify's chunks of 2,000


def run_with_stderr_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run the command with stderr on a new pseudo-terminal; (exit code, stdout, terminal)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, env=env)
        os.close(follower)
        follower = -1
        seen = bytearray()
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            seen += chunk
        out = proc.stdout.read().decode()
        code = proc.wait(timeout=60)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    return code, out, seen.decode()


@pytest.fixture
def trail(tmp_path):
    fill(tmp_path / "audit.sqlite3", EVENTS)
    return s.clean_env(AUDIT_SQLITE_PATH=str(tmp_path / "audit.sqlite3"),
                       AUDIT_CHECKPOINT_DIR=str(tmp_path / "checkpoints"))


def final_line(terminal: str) -> str:
    """The last state the bar drew (the text after the last carriage return)."""
    drawn = [part for line in terminal.splitlines() for part in line.split("\r") if part.strip()]
    bars = [p.strip() for p in drawn if p.lstrip().startswith("audit ")]
    assert bars, f"no progress bar in {terminal!r}"
    return bars[-1]


@pytest.mark.slow
def test_verify_on_a_terminal_shows_the_bar_with_rate_and_eta(trail):
    code, out, terminal = run_with_stderr_on_a_terminal(
        [*s.sidecar_command(), "audit", "verify"], trail)
    assert code == 0 and '"ok": true' in out
    line = final_line(terminal)
    assert re.fullmatch(r"audit verify: \[#{24}\] 100%  4,500/4,500 events  [\d,]+ events/s  ETA 0s",
                        line), line


@pytest.mark.slow
def test_export_to_a_file_on_a_terminal_shows_the_bar(trail, tmp_path):
    target = tmp_path / "trail.jsonl"
    code, _, terminal = run_with_stderr_on_a_terminal(
        [*s.sidecar_command(), "audit", "export", "--output", str(target)], trail)
    assert code == 0 and len(target.read_text().splitlines()) == EVENTS
    assert re.fullmatch(r"audit export: \[#{24}\] 100%  4,500/4,500 events  [\d,]+ events/s  ETA 0s",
                        final_line(terminal))
    assert f"exported 4500 events (sequences 1..4500) to {target}" in terminal
    code, out, terminal = run_with_stderr_on_a_terminal(
        [*s.sidecar_command(), "audit", "verify", "--file", str(target)], trail)
    assert code == 0 and '"ok": true' in out
    assert re.match(r"audit verify: \[#{24}\] 100%  4,500/4,500 events", final_line(terminal))


@pytest.mark.slow
def test_no_bar_when_stderr_is_not_a_terminal(trail, tmp_path):
    target = tmp_path / "trail.jsonl"
    for args in (["audit", "verify"], ["audit", "export", "--output", str(target)],
                 ["audit", "verify", "--file", str(target)]):
        res = subprocess.run([*s.sidecar_command(), *args], capture_output=True, text=True,
                             timeout=60, env=trail)
        assert res.returncode == 0, res.stderr
        assert "\r" not in res.stderr and "events/s" not in res.stderr, res.stderr


def test_the_bar_without_a_total_shows_count_and_rate_only():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    now = [100.0]
    stream = Terminal()
    bar = Progress("audit export", stream, None, clock=lambda: now[0])
    now[0] = 102.0
    bar.advance(3000)
    bar.finish()
    assert stream.getvalue() == "\raudit export: 3,000 events  1,500 events/s\raudit export: 3,000 events  1,500 events/s\n"
    quiet = io.StringIO()
    bar = Progress("audit export", quiet, 10)
    bar.advance(10)
    bar.finish()
    assert quiet.getvalue() == ""
