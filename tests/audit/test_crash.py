"""kill -9 at any moment: the sidecar as a real process, Postgres stopped under it.

Clients post events with their own ids. Postgres stops mid-stream (events spool), the
sidecar is killed with SIGKILL while requests are in flight, Postgres comes back, the
sidecar restarts and is killed again while it drains, and restarts once more. Every
acknowledged event must then be in the database exactly once and the chain must verify.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg
import pytest

from exporter.audit.store_pg import PgStore
from exporter.audit.verify import verify_store

pytestmark = pytest.mark.slow

EXE = Path(sys.executable).parent / "usdcop-exporter"
READY = re.compile(r"listening on http://([0-9.]+):(\d+)")
PATH = "/api/audit/signals"


class Sidecar:
    """`usdcop-exporter serve` as a child process."""

    def __init__(self, env: dict[str, str], config: Path) -> None:
        self.env = env
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.log: list[str] = []
        self._reader: asyncio.Task | None = None

    async def start(self, timeout: float = 30.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            str(EXE), "serve", "--listen", "127.0.0.1:0", "--config", str(self.config),
            "--log-format", "text", env=self.env, stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            line = await asyncio.wait_for(self.proc.stderr.readline(),
                                          max(0.1, deadline - time.monotonic()))
            if not line:
                raise AssertionError("sidecar exited before it was ready:\n" + "".join(self.log))
            self.log.append(line.decode(errors="replace"))
            match = READY.search(self.log[-1])
            if match:
                self.url = f"http://{match.group(1)}:{match.group(2)}"
                break
        self._reader = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode(errors="replace"))

    async def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean-up of any kind
        await self.proc.wait()
        if self._reader:
            await self._reader

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)
        if self._reader:
            await self._reader


async def poster(session, base: str, acked: set, unknown: set, stop: asyncio.Event,
                 statuses: dict) -> None:
    """Post events until told to stop; sort ids into acknowledged and unknown."""
    while not stop.is_set():
        eid = str(uuid.uuid4())
        body = {"event_type": "TRADE_EXECUTED", "event_id": eid, "symbol": "USDCOP",
                "data": {"trade_id": eid[:8], "price": 4250.5}}
        try:
            async with session.post(base() + PATH, json=body) as resp:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status in (200, 201, 202):
                    acked.add(eid)
                elif resp.status >= 500:
                    unknown.add(eid)
        except (TimeoutError, aiohttp.ClientError, OSError):
            unknown.add(eid)  # in flight when the process died: maybe stored, never acknowledged
            await asyncio.sleep(0.02)


async def spool_events(base: str) -> float | None:
    try:
        async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientError:
        return None
    match = re.search(r"^usdcop_audit_spool_events ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else None


async def test_no_acknowledged_event_lost_or_duplicated_through_kill_9(private_pg, tmp_path):
    if not private_pg.running():
        private_pg.start()
    dsn = private_pg.create_database("crash_" + uuid.uuid4().hex[:8])
    config = tmp_path / "services.yaml"
    config.write_text("services: []\n")
    env = {**os.environ, "POSTGRES_URL": dsn, "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
           "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
           "AUDIT_CHECKPOINT_KEY": "0123456789abcdef0123456789abcdef",
           "AUDIT_CHECKPOINT_EVERY": "200", "EXPORTER_SCHEDULER": "off"}
    for name in ("EXPORTER_API_TOKEN", "EXPORTER_ADMIN_TOKEN", "REDIS_URL", "EXPORTER_URL"):
        env.pop(name, None)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    acked: set[str] = set()
    unknown: set[str] = set()
    statuses: dict[int, int] = {}
    sidecar = Sidecar(env, config)
    await sidecar.start()
    current = {"url": sidecar.url}
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            clients = [asyncio.create_task(poster(session, lambda: current["url"], acked,
                                                  unknown, stop, statuses)) for _ in range(8)]
            await asyncio.sleep(rng.uniform(0.5, 1.0))  # stored directly
            await asyncio.to_thread(private_pg.stop)  # mid-stream: from now on, spooled
            await asyncio.sleep(rng.uniform(1.5, 2.5))
            await sidecar.kill()  # with requests in flight
            stop.set()
            await asyncio.gather(*clients)
        assert statuses.get(201) and statuses.get(202), (seed, statuses)
        await asyncio.to_thread(private_pg.start)
        second = Sidecar(env, config)
        await second.start()  # drains the spool left by the killed one
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        await second.kill()  # kill -9 again, possibly mid-drain
        third = Sidecar(env, config)
        await third.start()
        deadline = time.monotonic() + 60
        while await spool_events(third.url) != 0:
            assert time.monotonic() < deadline, "the spool never drained:\n" + "".join(third.log)
            await asyncio.sleep(0.1)
        await third.stop()
    finally:
        stop.set()
        await sidecar.stop()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT event_id::text, count(*) FROM usdcop_audit.events"
                            " GROUP BY event_id").fetchall()
    counts = dict(rows)
    missing = acked - counts.keys()
    assert not missing, f"seed {seed}: {len(missing)} acknowledged events lost"
    assert all(n == 1 for n in counts.values()), f"seed {seed}: an event stored twice"
    assert counts.keys() <= acked | unknown, "an event nobody sent"
    store = PgStore(dsn)
    await store.open()
    try:
        result = await verify_store(store, tmp_path / "checkpoints",
                                    b"0123456789abcdef0123456789abcdef")
    finally:
        await store.close()
    assert result["ok"], (seed, result)
    assert result["checked"] == len(counts) >= len(acked)
    print(f"seed={seed} statuses={statuses} acked={len(acked)} unknown={len(unknown)} stored={len(counts)}")


async def test_two_processes_cannot_share_a_spool_directory(pg_dsn, tmp_path):
    config = tmp_path / "services.yaml"
    config.write_text("services: []\n")
    env = {**os.environ, "POSTGRES_URL": pg_dsn, "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
           "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"), "EXPORTER_SCHEDULER": "off"}
    for name in ("EXPORTER_API_TOKEN", "EXPORTER_ADMIN_TOKEN", "REDIS_URL", "EXPORTER_URL"):
        env.pop(name, None)
    first = Sidecar(env, config)
    await first.start()
    try:
        second = Sidecar(env, config)
        with pytest.raises(AssertionError, match="exited before it was ready"):
            await second.start()
        assert await second.proc.wait() == 2
        assert any("in use by another process" in line for line in second.log)
    finally:
        await first.stop()
