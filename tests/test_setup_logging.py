"""exporter.setup_logging in an engine process: the sidecar's sink, LOG_LEVEL/LOG_FORMAT,
context and metadata visible, and tracebacks without local values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

ENGINE = textwrap.dedent(
    """
    import sys
    from exporter import get_logger, setup_logging

    args = sys.argv[1:]
    setup_logging(*args) if args else setup_logging()
    log = get_logger(service="TradingEngine")
    log.debug("debug line")
    log.info("Processing signal", {"signal_id": "sig_123"}, {"confidence": 0.85})


    def execute(price):
        secret_quantity = 987654321  # a local a traceback must not show
        raise RuntimeError("Connection timeout")


    try:
        execute(4250.5)
    except RuntimeError as exc:
        log.error("Failed to execute trade", exc, {"symbol": "USDCOP"})
    """
)


def run_engine(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "LOG_FORMAT")}
    return subprocess.run([sys.executable, "-c", ENGINE, *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_json_lines_carry_context_and_metadata_and_no_local_values():
    proc = run_engine({"LOG_FORMAT": "json", "LOG_LEVEL": "info"})
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [line["msg"] for line in lines] == ["Processing signal", "Failed to execute trade"]
    info, error = lines
    assert info["level"] == "info" and info["service"] == "TradingEngine"
    assert info["context"] == {"signal_id": "sig_123"} and info["metadata"] == {"confidence": 0.85}
    assert error["context"] == {"symbol": "USDCOP"}
    assert error["error"] == {"type": "RuntimeError", "message": "Connection timeout"}
    assert "987654321" not in proc.stderr and "4250.5" not in proc.stderr


def test_text_lines_show_the_fields_and_a_short_traceback_without_values():
    proc = run_engine({"LOG_FORMAT": "text", "LOG_LEVEL": "debug"})
    assert proc.returncode == 0, proc.stderr
    assert "debug line" in proc.stderr
    info = next(line for line in proc.stderr.splitlines() if "Processing signal" in line)
    assert '"signal_id": "sig_123"' in info and '"confidence": 0.85' in info
    assert '"service": "TradingEngine"' in info
    assert "RuntimeError: Connection timeout" in proc.stderr
    assert "987654321" not in proc.stderr and "4250.5" not in proc.stderr
    assert len(proc.stderr.splitlines()) < 20


def test_arguments_win_over_the_environment():
    proc = run_engine({"LOG_FORMAT": "text", "LOG_LEVEL": "debug"}, "error", "json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [line["msg"] for line in lines] == ["Failed to execute trade"]


def test_a_bad_level_is_refused_by_name():
    proc = run_engine({"LOG_LEVEL": "loud"})
    assert proc.returncode == 1
    assert "LOG_LEVEL" in proc.stderr and "loud" in proc.stderr
