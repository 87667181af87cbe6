"""Every `console` block of README.md and docs/*.md runs, and says what really happens.

A `$ ` line is a command; the lines after it, up to the next command, are its output
(stdout and stderr together), where a line `...` stands for any number of lines and a last
line `[exit N]` for the exit code (0 when absent). A block that needs a live stack or
changes the machine is marked ```console no-run and is not collected here.
"""

from __future__ import annotations

import ast
import glob
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.audit.pg_schema import writer_grants
from exporter.config import ConfigError, parse_config
from tests.e2e import stack as s
from tests.support.docs import DOC_FILES, ROOT, Command, commands, runnable
from tests.support.docs import blocks as all_blocks
from tests.support.tools import require_tool

# The programs a documentation command may start: the sidecar's CLI, the linter, and the
# Prometheus and Alertmanager checkers (read-only on the files they are given).
PROGRAMS = {
    ".venv/bin/usdcop-exporter": lambda: s.sidecar_command(),
    "usdcop-exporter": lambda: s.sidecar_command(),
    ".venv/bin/ruff": lambda: [_ruff()],
    "promtool": lambda: [require_tool("promtool")],
    "amtool": lambda: [require_tool("amtool")],
}


def _ruff() -> str:
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else require_tool("ruff")


def _all_commands() -> list[Command]:
    return [c for block in runnable("console") for c in commands(block)]


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` lines fit `expected`, where a `...` line matches any run of lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and matches(expected[1:], actual[1:])


@pytest.mark.slow
@pytest.mark.parametrize("command", _all_commands(),
                         ids=lambda c: f"{c.block.where} {c.command}")
def test_a_documented_command_gives_the_documented_output(command: Command):
    argv = shlex.split(command.command)
    assert argv[0] in PROGRAMS, (
        f"{command.block.where}: `{argv[0]}` is not a program the docs tests run; "
        "mark the block ```console no-run if it needs a live stack")
    expected = [line.rstrip() for line in command.output]
    code = 0
    if expected and expected[-1].startswith("[exit ") and expected[-1].endswith("]"):
        code = int(expected.pop()[6:-1])
    args = [a for arg in argv[1:] for a in (sorted(glob.glob(arg, root_dir=ROOT)) or [arg])]
    res = subprocess.run([*PROGRAMS[argv[0]](), *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=s.clean_env(COLUMNS="100"))
    actual = [line.rstrip() for line in (res.stdout + res.stderr).splitlines()]
    assert res.returncode == code, f"{command.block.where}: exit {res.returncode}\n" + "\n".join(actual)
    if expected:
        assert matches(expected, actual), (
            f"{command.block.where}: `{command.command}` printed\n" + "\n".join(actual))


def test_console_blocks_are_found_and_parsed():
    found = _all_commands()
    assert any(c.command == ".venv/bin/usdcop-exporter --help" for c in found)
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert matches(["a", "..."], ["a"])
    assert not matches(["a", "z"], ["a", "b", "z"])


def test_every_python_block_compiles():
    """Run or not, a Python block is valid Python (top-level await allowed, as in asyncio's
    REPL); blocks marked no-run included."""
    blocks = [b for path in DOC_FILES for b in all_blocks(path) if b.lang == "python"]
    assert blocks
    for block in blocks:
        try:
            compile(block.text, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as exc:
            pytest.fail(f"{block.where}: {exc}")


def test_every_services_yaml_example_is_valid():
    """A yaml block that is a services file, or its desk: section, passes the loader."""
    checked = 0
    for path in DOC_FILES:
        for block in all_blocks(path):
            if block.lang != "yaml" or not block.text.startswith(("services:", "desk:")):
                continue
            text = block.text if block.text.startswith("services:") else "services: []\n" + block.text
            try:
                parse_config(text, block.where)
            except ConfigError as exc:
                pytest.fail(str(exc))
            checked += 1
    assert checked


def test_the_writer_grants_shown_in_docs_audit_are_the_ones_the_code_gives():
    """docs/audit.md's role block: its GRANT/REVOKE statements after the first start are
    exactly exporter.audit.pg_schema.writer_grants()."""
    [block] = [b for b in all_blocks(ROOT / "docs" / "audit.md") if b.lang == "sql"]
    after = block.text.split("-- after the first start", 1)[1].split("\n", 1)[1]
    shown = [" ".join(stmt.split()) for stmt in after.split(";") if stmt.strip()]
    given = [" ".join(stmt.as_string(None).replace('"', "").split())
             for stmt in writer_grants("usdcop_audit_writer")]
    assert shown == given
