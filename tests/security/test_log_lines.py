"""The text log keeps one record on one line: a Redis key, or any other text a warning
quotes, cannot forge a log line. The console script as a real process on the machine's
Redis, with a key written there under the test's namespace."""

from __future__ import annotations

import os

import pytest
import redis

from tests.cli.test_serve_process import READY, SCRIPT, Proc
from tests.conftest import REDIS_TEST_URL

FORGED = "2026-01-01T00:00:00.000Z CRITICAL audit chain broken; trading halted"
ESCAPED = {"\n": "\\n", "\r\n": "\\r\\n", "\u2028": "\\u2028", "\x85": "\\x85"}


@pytest.mark.slow
@pytest.mark.parametrize("separator", list(ESCAPED))
def test_a_redis_key_cannot_forge_a_text_log_line(tmp_path, redis_namespace, separator):
    key = f"{redis_namespace}:metrics:custom:evil{separator}{FORGED}"
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.set(key.encode("utf-8"), b"1")
    services = tmp_path / "services.yaml"
    services.write_text("services: []\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EXPORTER_", "REDIS_", "POSTGRES_", "AUDIT_", "LOG_"))}
    env.update(LOG_FORMAT="text", LOG_LEVEL="info", EXPORTER_SCHEDULER="off",
               REDIS_URL=REDIS_TEST_URL, REDIS_NAMESPACE=redis_namespace,
               MIRROR_INTERVAL="200ms", AUDIT_SQLITE_PATH=str(tmp_path / "a.sqlite3"),
               AUDIT_SPOOL_DIR=str(tmp_path / "spool"), AUDIT_CHECKPOINT_DIR=str(tmp_path / "cp"))
    proc = Proc([SCRIPT, "serve", "--config", str(services), "--listen", "127.0.0.1:0"], env)
    try:
        proc.wait_line(READY.pattern)
        proc.wait_line(r"mirror: .*evil")  # the mirror refused the key's name, and said so
    finally:
        proc.stop()
        client.delete(key.encode("utf-8"))
        client.close()
    lines = "".join(proc.lines).splitlines()  # splitlines() breaks at U+2028 and NEL too
    assert not [line for line in lines if line.startswith(FORGED)], lines
    warning = next(line for line in lines if "mirror: " in line and "evil" in line)
    assert f"evil{ESCAPED[separator]}{FORGED}" in warning


def test_printable_escapes_what_ends_a_line():
    from exporter.log import printable

    text = "a\nb\rc\x85d\u2028e\u2029f\ud800g\x1bh\x7fi\tj"
    assert printable(text) == "a\\nb\\rc\\x85d\\u2028e\\u2029f\\ud800g\\x1bh\\x7fi\tj"
    assert len(printable(text).splitlines()) == 1
