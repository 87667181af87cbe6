"""Durable audit events per second through the API, next to raw psycopg in the same run;
and query latency over a million stored events.

    .venv/bin/python bench/audit.py [--seconds 5] [--connections 32] [--rows 1000000]

Throughput: the real sidecar (`usdcop-exporter serve`) in its own process, loaded from this
one over keep-alive connections with pre-built requests (raw asyncio streams, so the client
costs little). Every 201/202 counted is durable: committed in Postgres, or fsynced in the
spool. Scenarios:

  api/single/up     one event per POST, Postgres up (201)
  api/batch100/up   {"events": [100]} per POST, Postgres up (201)
  api/single/spool  Postgres unreachable: every event fsynced to the spool (202)
  api/batch100/spool
  raw/insert        one autocommitted INSERT per event, one connection (the baseline for
                    single events)
  raw/copy100       psycopg COPY of 100 rows per committed transaction, one connection (the
                    baseline for batches)
  raw/copy          one COPY of every row in one transaction (ingest ceiling, for scale)

Raw rows go into the same table definition (a database migrated by the same code), with
placeholder hashes: the raw numbers are what the database alone can do, without chain,
de-duplication or HTTP. Query latency: `GET /api/audit/signals` against a database holding
`--rows` events (bulk-loaded with placeholder hashes), median and p95 over repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.audit import pg_schema  # noqa: E402
from exporter.audit.chain import format_time  # noqa: E402

ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
EXE = Path(sys.executable).parent / "usdcop-exporter"
PATH = "/api/audit/signals"
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
_READY = re.compile(r"listening on http://([0-9.]+):(\d+)")
TYPES = ["SIGNAL_GENERATED", "TRADE_EXECUTED", "POSITION_OPENED", "POSITION_CLOSED",
         "RISK_LIMIT_BREACHED"]
SYMBOLS = [f"SYM{i:03d}" for i in range(20)] + ["USDCOP"]


def trade(i: int) -> dict:
    return {"event_type": "TRADE_EXECUTED", "symbol": "USDCOP",
            "data": {"trade_id": f"t{i}", "signal_id": f"s{i}", "side": "BUY",
                     "price": 4250.5 + i % 100, "quantity": 1000, "executed_at":
                     "2026-01-15T10:30:00Z"}}


def request(body: bytes, port: int) -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# ---- databases -----------------------------------------------------------------------------

def create_db(tag: str) -> tuple[str, str]:
    name = f"usdcop_bench_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_db(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def migrate(dsn: str, months: list | None = None) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await pg_schema.migrate(conn)
        if months:
            await pg_schema.ensure_partitions(conn, months=months)


COLUMNS = ("sequence, event_id, event_type, \"timestamp\", received_at, accepted_at, symbol,"
           " actor, data, prev_hash, hash")


def raw_row(seq: int, now: str, data: dict, event_type: str = "TRADE_EXECUTED",
            symbol: str = "USDCOP", ts: str | None = None) -> tuple:
    h = seq.to_bytes(32, "big")
    return (seq, str(uuid.uuid4()), event_type, ts or now, now, now, symbol, None, Jsonb(data),
            h, h)


def raw_insert(dsn: str, seconds: float, first: int) -> float:
    """One autocommitted INSERT per event for `seconds`; events per second."""
    now = format_time(datetime.now(UTC))
    with psycopg.connect(dsn, autocommit=True) as conn:
        seq, start = first, time.perf_counter()
        while time.perf_counter() - start < seconds:
            seq += 1
            conn.execute(f"INSERT INTO usdcop_audit.events ({COLUMNS}) VALUES"
                         " (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                         raw_row(seq, now, trade(seq)["data"]))
        return (seq - first) / (time.perf_counter() - start)


def raw_copy(dsn: str, seconds: float, batch: int, first: int) -> float:
    """COPY `batch` rows per committed transaction for `seconds`; events per second."""
    now = format_time(datetime.now(UTC))
    with psycopg.connect(dsn, autocommit=True) as conn:
        seq, start = first, time.perf_counter()
        while time.perf_counter() - start < seconds:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY usdcop_audit.events ({COLUMNS}) FROM STDIN") as copy:
                    for _ in range(batch):
                        seq += 1
                        copy.write_row(raw_row(seq, now, trade(seq)["data"]))
        return (seq - first) / (time.perf_counter() - start)


def copy_all(dsn: str, rows: int, first: int) -> float:
    """One COPY of `rows` rows in one transaction; events per second."""
    now = format_time(datetime.now(UTC))
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY usdcop_audit.events ({COLUMNS}) FROM STDIN") as copy:
                for seq in range(first + 1, first + rows + 1):
                    copy.write_row(raw_row(seq, now, trade(seq)["data"]))
        return rows / (time.perf_counter() - start)


# ---- the sidecar ---------------------------------------------------------------------------

def start_sidecar(env_extra: dict, tmp: Path) -> tuple[subprocess.Popen, int]:
    """`usdcop-exporter serve` on a free port with the audit settings; (process, port)."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "services.yaml"
    config.write_text("services: []\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EXPORTER_", "AUDIT_", "POSTGRES_", "REDIS_"))}
    env.update({"AUDIT_SPOOL_DIR": str(tmp / "spool"), "AUDIT_CHECKPOINT_DIR": str(tmp / "cp"),
                "AUDIT_SQLITE_PATH": str(tmp / "audit.sqlite3"), "EXPORTER_SCHEDULER": "off",
                "LOG_LEVEL": "warning", "AUDIT_VERIFY_INTERVAL": "24h", **env_extra})
    proc = subprocess.Popen([str(EXE), "serve", "--listen", "127.0.0.1:0", "--config", str(config),
                             "--log-format", "text", "--log-level", "info"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        match = _READY.search(line)
        if match:
            threading_drain(proc)
            wait_idle(proc.pid)
            return proc, int(match.group(2))
    raise RuntimeError("the sidecar did not start")


def wait_idle(pid: int, timeout: float = 120.0) -> None:
    """Wait until the sidecar's start-up work is done (features that replay the trail at
    start read every stored event): two quiet quarter-seconds in a row."""
    deadline, quiet = time.monotonic() + timeout, 0
    last = cpu_seconds(pid)
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.03 else 0
        last = now


def threading_drain(proc: subprocess.Popen) -> None:
    import threading

    def drain():
        for _ in proc.stderr:
            pass
    threading.Thread(target=drain, daemon=True).start()


async def _worker(port: int, requests: list[bytes], per: int, stop_at: float,
                  out: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < stop_at:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            match = _LENGTH.search(head)
            if match:
                await reader.readexactly(int(match.group(1)))
            status = int(head[9:12])
            out[status] = out.get(status, 0) + 1
    finally:
        writer.close()


async def load(port: int, requests: list[bytes], per: int, seconds: float,
               connections: int) -> tuple[float, dict]:
    """Durable events per second (201/202 answers × events per request) over `seconds`."""
    out: dict[int, int] = {}
    warm = time.perf_counter() + 0.5
    await asyncio.gather(*(_worker(port, requests, per, warm, {}) for _ in range(connections)))
    start = time.perf_counter()
    await asyncio.gather(*(_worker(port, requests, per, start + seconds, out)
                           for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return (out.get(201, 0) + out.get(202, 0)) * per / elapsed, out


def api_requests(port: int) -> dict[str, tuple[int, list[bytes]]]:
    single = [request(json.dumps(trade(i)).encode(), port) for i in range(50)]
    batch = [request(json.dumps({"events": [trade(i * 100 + j) for j in range(100)]}).encode(), port)
             for i in range(5)]
    return {"single": (1, single), "batch100": (100, batch)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api_run(proc: subprocess.Popen, port: int, kind: str, seconds: float,
            connections: int) -> dict:
    """One scenario against a running sidecar: events/s and sidecar CPU µs per event."""
    per, requests = api_requests(port)[kind]
    cpu = cpu_seconds(proc.pid)
    started = time.perf_counter()
    rate, statuses = asyncio.run(load(port, requests, per, seconds, connections))
    used = cpu_seconds(proc.pid) - cpu
    events = rate * seconds
    total = time.perf_counter() - started  # includes the 0.5 s warm-up the CPU also covers
    return {"events_per_second": rate, "answers": statuses,
            "cpu_us_per_event": used / max(1.0, events * total / seconds) * 1e6}


async def verify_rate(dsn: str) -> dict:
    """Verify the whole chain the API runs built; events verified per second."""
    from exporter.audit.store_pg import PgStore
    from exporter.audit.verify import verify_store

    store = PgStore(dsn)
    await store.open()
    try:
        started = time.perf_counter()
        result = await verify_store(store, None)
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    if not result["ok"]:
        raise RuntimeError(f"the chain built by the API runs is broken: {result['first_broken']}")
    return {"events": result["checked"], "seconds": round(elapsed, 2),
            "events_per_second": round(result["checked"] / elapsed)}


# ---- query latency over a million events -------------------------------------------------

def bulk_load(dsn: str, rows: int) -> dict:
    """COPY `rows` synthetic events received over the last `rows` seconds; returns the layout."""
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=rows)
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY usdcop_audit.events ({COLUMNS}) FROM STDIN") as copy:
                for i in range(1, rows + 1):
                    when = format_time(start + timedelta(seconds=i))
                    copy.write_row(raw_row(i, when, {"i": i}, TYPES[i % len(TYPES)]
                                           if i % 100 else "TRADING_HALTED",
                                           SYMBOLS[i % len(SYMBOLS)]))
            cur.execute("UPDATE usdcop_audit.chain_head SET sequence = %s", (rows,))
        # A table that has been in service is vacuumed: visibility map set, statistics fresh.
        conn.execute("VACUUM (ANALYZE) usdcop_audit.events")
    return {"start": start, "end": end, "seconds": round(time.perf_counter() - started, 1)}


async def _get(port: int, target: str) -> tuple[int, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        t0 = time.perf_counter()
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(int(_LENGTH.search(head).group(1)))
        elapsed = time.perf_counter() - t0
        status = int(head[9:12])
        if status != 200:
            raise RuntimeError(f"{target}: {status} {body[:200]!r}")
        return len(json.loads(body)["events"]), elapsed
    finally:
        writer.close()


async def query_runs(dsn: str, layout: dict, tmp: Path, reps: int) -> dict:
    from urllib.parse import urlencode

    from exporter.audit.query import encode_cursor

    mid = layout["start"] + (layout["end"] - layout["start"]) / 2
    rows = int((layout["end"] - layout["start"]).total_seconds())
    cases = {
        "newest 100": {},
        "eventType (1% of rows), 100": {"eventType": "TRADING_HALTED"},
        "symbol (1 in 21), 100": {"symbol": "SYM007"},
        "1 h window mid-table, 100": {"startTime": mid.isoformat(),
                                      "endTime": (mid + timedelta(hours=1)).isoformat()},
        "page at half depth (cursor), 100": {"cursor": encode_cursor(rows // 2)},
        "eventType + symbol + 1 day, 100": {
            "eventType": "TRADE_EXECUTED", "symbol": "USDCOP",
            "startTime": mid.isoformat(), "endTime": (mid + timedelta(days=1)).isoformat()},
        "1000 newest": {"limit": "1000"},
    }
    proc, port = start_sidecar({"POSTGRES_URL": dsn}, tmp)
    out = {}
    try:
        for name, params in cases.items():
            target = PATH + ("?" + urlencode(params) if params else "")
            count, _ = await _get(port, target)  # warm the plan and the cache
            times = [(await _get(port, target))[1] * 1000 for _ in range(reps)]
            out[name] = {"events": count, "median_ms": round(statistics.median(times), 2),
                         "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 2)}
    finally:
        proc.terminate()
        proc.wait(30)
    return out


# ---- main ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "audit.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="usdcop-bench-audit-"))
    names, procs = [], []
    samples: dict[str, list[dict]] = {}
    stored, verified = 0, None
    try:
        name, api_dsn = create_db("api")
        names.append(name)
        asyncio.run(migrate(api_dsn))
        name, raw_dsn = create_db("raw")
        names.append(name)
        asyncio.run(migrate(raw_dsn))
        absent = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
        next_seq = 10_000_000
        for _ in range(args.rounds):  # alternate, so a busy moment hurts every scenario alike
            for tag, url in (("up", api_dsn), ("spool", absent)):
                # A fresh sidecar per round: each round ends before the first background
                # verification (60 s after start), which would otherwise share the CPU.
                proc, port = start_sidecar({"POSTGRES_URL": url}, tmp / tag)
                procs.append(proc)
                for kind in ("single", "batch100"):
                    samples.setdefault(f"api/{kind}/{tag}", []).append(
                        api_run(proc, port, kind, args.seconds, args.connections))
                proc.terminate()
                proc.wait(30)
            samples.setdefault("raw/insert", []).append(
                {"events_per_second": raw_insert(raw_dsn, args.seconds, next_seq)})
            next_seq += 10_000_000
            samples.setdefault("raw/copy100", []).append(
                {"events_per_second": raw_copy(raw_dsn, args.seconds, 100, next_seq)})
            next_seq += 10_000_000
        samples["raw/copy"] = [{"events_per_second": copy_all(raw_dsn, 200_000, next_seq)}]
        with psycopg.connect(api_dsn) as conn:
            (stored,) = conn.execute("SELECT count(*) FROM usdcop_audit.events").fetchone()
        verified = asyncio.run(verify_rate(api_dsn))  # the chain the API built, checked
        name, q_dsn = create_db("query")
        names.append(name)
        first = pg_schema.month_start(datetime.now(UTC) - timedelta(seconds=args.rows))
        months = [first]
        while months[-1] < pg_schema.month_start(datetime.now(UTC)):
            months.append(pg_schema.add_months(months[-1], 1))
        asyncio.run(migrate(q_dsn, months))
        layout = bulk_load(q_dsn, args.rows)
        queries = asyncio.run(query_runs(q_dsn, layout, tmp / "query", args.reps))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for name in names:
            drop_db(name)
        shutil.rmtree(tmp, ignore_errors=True)
    results = {}
    for key, runs in samples.items():
        entry = {"events_per_second": round(statistics.median(r["events_per_second"] for r in runs)),
                 "rounds": [round(r["events_per_second"]) for r in runs]}
        if "cpu_us_per_event" in runs[0]:
            entry["sidecar_cpu_us_per_event"] = round(statistics.median(
                r["cpu_us_per_event"] for r in runs))
            entry["answers"] = {str(k): sum(r["answers"].get(k, 0) for r in runs)
                                for k in {k for r in runs for k in r["answers"]}}
        results[key] = entry
    rate = {k: v["events_per_second"] for k, v in results.items()}
    report = {
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "seconds": args.seconds, "rounds": args.rounds,
        "connections": args.connections, "events_stored_by_api_run": stored,
        "verify": verified,
        "events_per_second": rate,
        "ratios": {
            "api/batch100/up ÷ raw/copy100": round(rate["api/batch100/up"] / rate["raw/copy100"], 2),
            "api/single/up ÷ raw/insert": round(rate["api/single/up"] / rate["raw/insert"], 2),
            "api/batch100/spool ÷ raw/copy100": round(rate["api/batch100/spool"] / rate["raw/copy100"], 2),
            "api/single/spool ÷ raw/insert": round(rate["api/single/spool"] / rate["raw/insert"], 2),
        },
        "detail": results,
        "query": {"rows": args.rows, "load_seconds": layout["seconds"], "reps": args.reps,
                  "latency": queries},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
