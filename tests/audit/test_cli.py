"""`usdcop-exporter audit verify|export`, through the real entry point."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from exporter.audit import checkpoints as cps
from exporter.audit.store_sqlite import SqliteStore
from exporter.cli import main
from tests.support.tools import free_port

from .conftest import Tamper, event

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in ("POSTGRES_URL", "POSTGRES_URL_FILE", "POSTGRES_ADMIN_URL",
                 "AUDIT_CHECKPOINT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDIT_SQLITE_PATH", str(tmp_path / "audit.sqlite3"))
    monkeypatch.setenv("AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("AUDIT_CHECKPOINT_KEY", KEY)
    return tmp_path


def fill(path, n: int, checkpoint_dir=None):
    async def run():
        store = SqliteStore(path)
        await store.open()
        for i in range(n):
            await store.append([[event(data={"i": i})]])
        if checkpoint_dir:
            seq, digest = await store.head()
            cp = cps.make(seq, digest.hex(), seq, datetime.now(UTC), None, KEY.encode())
            await store.add_checkpoint(cp)
            cps.write_file(checkpoint_dir, cp)
        await store.close()
        return store
    return asyncio.run(run())


def test_verify_intact_chain(env, capsys):
    fill(env / "audit.sqlite3", 4, env / "checkpoints")
    assert main(["audit", "verify"]) == 0
    result = json.loads(capsys.readouterr().out)
    # Incremental: 1..4 are anchored by the signed checkpoint at 4, nothing after it.
    assert result["ok"] and result["status"] == "ok" and result["mode"] == "incremental"
    assert result["checked"] == 0 and result["range"] is None
    assert result["trusted"] == {"from": 1, "through": 4, "checkpoint": "directory"}
    assert result["checkpoint"]["sequence"] == 4
    assert main(["audit", "verify", "--full"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "full" and result["checked"] == 4
    assert result["range"] == {"from": 1, "through": 4} and result["trusted"] is None


def test_verify_names_the_first_broken_link(env, capsys):
    store = fill(env / "audit.sqlite3", 5)
    Tamper(store).set_actor(3, "mallory")
    assert main(["audit", "verify"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["first_broken"]["sequence"] == 3
    assert "chain broken at sequence 3: hash_mismatch" in captured.err


def test_verify_catches_a_cut_tail_against_the_checkpoint_directory(env, capsys):
    store = fill(env / "audit.sqlite3", 6, env / "checkpoints")
    Tamper(store).cut_tail(4)
    assert main(["audit", "verify"]) == 1
    assert "chain broken at sequence 5: tail_cut" in capsys.readouterr().err
    assert main(["audit", "verify", "--checkpoint-dir", str(env / "elsewhere")]) == 0
    assert "cut-off tail cannot be detected" in capsys.readouterr().err


def test_export_then_verify_offline(env, capsys):
    fill(env / "audit.sqlite3", 5)
    out = env / "trail.jsonl"
    assert main(["audit", "export", "--output", str(out)]) == 0
    assert "exported 5 events (sequences 1..5)" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == [1, 2, 3, 4, 5]
    assert main(["audit", "verify", "--file", str(out)]) == 0
    capsys.readouterr()
    tampered = json.loads(lines[1])
    tampered["data"]["i"] = 99
    lines[1] = json.dumps(tampered)
    out.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--file", str(out)]) == 1
    assert "sequence 2: hash_mismatch" in capsys.readouterr().err
    del lines[2]
    del lines[1]
    out.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--file", str(out)]) == 1
    assert "sequence 2: sequence_gap" in capsys.readouterr().err


def test_export_window_verifies_on_its_own(env, capsys):
    fill(env / "audit.sqlite3", 3)
    middle = datetime.now(UTC).isoformat()
    fill(env / "audit.sqlite3", 3)
    out = env / "window.jsonl"
    assert main(["audit", "export", "--since", middle, "--output", str(out)]) == 0
    assert [json.loads(x)["sequence"] for x in out.read_text().splitlines()] == [4, 5, 6]
    assert main(["audit", "verify", "--file", str(out)]) == 0
    assert "starts at sequence 4" in capsys.readouterr().err


def test_cannot_verify_is_exit_2(env, capsys, monkeypatch):
    assert main(["audit", "verify"]) == 2  # no SQLite file, no Postgres
    assert "no audit store" in capsys.readouterr().err
    monkeypatch.setenv("POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert main(["audit", "verify"]) == 2
    assert "cannot verify" in capsys.readouterr().err
    assert main(["audit", "export", "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["audit", "verify", "--file", str(env / "missing.jsonl")]) == 2


def test_verify_without_a_key_is_not_plain_ok(env, capsys, monkeypatch):
    fill(env / "audit.sqlite3", 3)
    monkeypatch.delenv("AUDIT_CHECKPOINT_KEY")
    assert main(["audit", "verify"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["ok"] and result["status"] == "unauthenticated" and result["mode"] == "full"
    assert "warning: no AUDIT_CHECKPOINT_KEY: purges cannot be authenticated" in captured.err


@pytest.mark.slow
def test_a_reader_that_goes_away_gets_no_traceback(env):
    """`audit verify | head -0`: the pipe is closed before the answer is written; the
    command ends without a traceback."""
    import os
    import shutil
    import subprocess
    import sys

    fill(env / "audit.sqlite3", 3000)
    script = shutil.which("usdcop-exporter", path=os.path.dirname(sys.executable))
    read, write = os.pipe()
    proc = subprocess.Popen([script, "audit", "verify"], stdout=write, stderr=subprocess.PIPE,
                            env=os.environ.copy())
    os.close(write)
    os.close(read)  # the reader is gone before the verification ends
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()[-2000:]
    assert proc.returncode == 1
