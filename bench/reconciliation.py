"""How fast the desk's reconciliation starts over a million audit events in Postgres, with
and without the ledger saved in Redis.

    .venv/bin/python bench/reconciliation.py [--rows 1000000] [--rounds 3] [--after 1000]

(prefix `taskset -c 0` to keep it on one core; the Postgres and Redis servers are not pinned).

The real parts, in this process: the Postgres audit store (`PgStore`, its own pool), the
Redis cache client (`RedisClient` on Redis) and the desk's `Reconciler`, built the way the
sidecar builds them (default `desk:` section: orphan window 1 d, stale after 1 d). The
trail is `--rows` events bulk-loaded with COPY the way `audit.py` loads its query table
(placeholder hashes, one event a second up to now), but with data the reconciliation folds:
in each block of five events a signal, a trade on it (1 in 100 on an unknown signal: an
orphan), a position opened, the same position closed (1 in 1,000 left open), and a risk
event it does not fold.

Each round, with new objects each time (a new process's state; the database and Redis
caches stay warm, as they would over a sidecar restart):

  first start   the saved ledger deleted; store, client and reconciler built, then the
                first `run_once()` to its report: it reads the whole trail
  restart       `--after` events appended (COPY) since the first start's run; new store,
                client and reconciler, then the first `run_once()`: it takes up the ledger
                the first start saved at `<ns>:desk:reconciliation:ledger` and reads only
                the events after it

Times are from building the objects to the report, median (min–max) over the rounds.
"Take-up" is the part before the trail is read (reading the saved ledger from Redis,
checking its last event's hash in Postgres). Target: a restart's first run ≤ 2 s.

Postgres: its own database on BENCH_PG_ADMIN_DSN's server (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end. Redis: BENCH_REDIS_URL
(default redis://127.0.0.1:6379/13), in a namespace of its own whose keys are deleted at
the end. Results: bench/results/reconciliation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from loguru import logger

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import harness as h  # noqa: E402
from audit import COLUMNS, create_db, drop_db, migrate, raw_row  # noqa: E402

from exporter.audit import pg_schema  # noqa: E402
from exporter.audit.chain import format_time  # noqa: E402
from exporter.audit.store_pg import PgStore  # noqa: E402
from exporter.cache.client import RedisClient  # noqa: E402
from exporter.config import parse_config  # noqa: E402
from exporter.desk.reconcile import LEDGER_KEY, Reconciler  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SYMBOLS = ["USDCOP"] + [f"SYM{i:03d}" for i in range(20)]
DESK = parse_config("services: []\n").desk  # the default desk: section
TARGET_S = 2.0


# ---- the trail -----------------------------------------------------------------------------

def event(i: int) -> tuple[str, str, dict]:
    """Event `i` (1-based) of the synthetic desk trail: (event_type, symbol, data)."""
    k, slot = divmod(i - 1, 5)
    symbol = SYMBOLS[k % len(SYMBOLS)]
    side = "LONG" if k % 2 else "SHORT"
    if slot == 0:
        return "SIGNAL_GENERATED", symbol, {"signal_id": f"s{k}", "symbol": symbol,
                                            "action": "BUY" if k % 2 else "SELL",
                                            "confidence": 0.7}
    if slot == 1:
        signal = f"x{k}" if k % 100 == 99 else f"s{k}"  # 1 in 100: no such signal (orphan)
        return "TRADE_EXECUTED", symbol, {"trade_id": f"t{k}", "signal_id": signal,
                                          "symbol": symbol, "side": "BUY", "quantity": 1000,
                                          "price": 4250.5 + k % 100}
    if slot == 2:
        return "POSITION_OPENED", symbol, {"position_id": f"p{k}", "symbol": symbol,
                                           "side": side, "quantity": 1000,
                                           "entry_price": 4250.5 + k % 100}
    if slot == 3 and k % 1000 != 999:  # 1 in 1,000 positions stays open
        return "POSITION_CLOSED", symbol, {"position_id": f"p{k}", "symbol": symbol,
                                           "exit_price": 4251.0 + k % 100, "realized_pnl": 12.5}
    return "RISK_LIMIT_BREACHED", symbol, {"limit": "max_position", "value": 0.5, "symbol": symbol}


def copy_events(dsn: str, first: int, last: int, start: datetime, step: timedelta) -> None:
    """COPY events first..last (event `first` at `start`, then one every `step`) in one
    transaction, and move the chain head to `last`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY usdcop_audit.events ({COLUMNS}) FROM STDIN") as copy:
                for i in range(first, last + 1):
                    when = format_time(start + (i - first) * step)
                    kind, symbol, data = event(i)
                    copy.write_row(raw_row(i, when, data, kind, symbol))
            cur.execute("UPDATE usdcop_audit.chain_head SET sequence = %s", (last,))


def seed(dsn: str, rows: int) -> float:
    """`rows` events one a second up to now, vacuumed as a table in service is; seconds taken."""
    end = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    copy_events(dsn, 1, rows, end - timedelta(seconds=rows - 1), timedelta(seconds=1))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) usdcop_audit.events")
    return time.perf_counter() - started


def months_back(seconds: int) -> list:
    first = pg_schema.month_start(datetime.now(UTC) - timedelta(seconds=seconds))
    months = [first]
    while months[-1] < pg_schema.month_start(datetime.now(UTC) + timedelta(days=1)):
        months.append(pg_schema.add_months(months[-1], 1))
    return months


# ---- one start -----------------------------------------------------------------------------

class Watched:
    """The real store, noting where and when the reconciler starts reading the trail (the
    events themselves pass straight through)."""

    def __init__(self, store: PgStore) -> None:
        self.store = store
        self.starts: list[tuple[int, float]] = []

    def iter_events(self, after: int = 0):
        self.starts.append((after, time.perf_counter()))
        return self.store.iter_events(after=after)

    async def get_event(self, sequence: int):
        return await self.store.get_event(sequence)

    async def first_sequence(self):
        return await self.store.first_sequence()


async def start_once(dsn: str, namespace: str, *, forget: bool) -> dict:
    """Build store, client and reconciler as a starting sidecar does and time the first run."""
    if forget:
        async with aclient(namespace) as client:
            await client.delete(LEDGER_KEY)
    t0 = time.perf_counter()
    store = PgStore(dsn)
    await store.open()
    client = RedisClient(namespace=namespace, url=REDIS_URL)
    try:
        watched = Watched(store)
        job = Reconciler(watched, client, lambda: ["USDCOP"], lambda: DESK)
        report = await job.run_once()
        elapsed = time.perf_counter() - t0
        if report is None:
            raise RuntimeError(f"the reconciliation run did not complete: {job.last_problem}")
        [(after, read_at)] = watched.starts
        (raw,) = await client.backend.mget([client.key(LEDGER_KEY)])
    finally:
        await client.close()
        await store.close()
    return {"seconds": elapsed, "take_up_seconds": read_at - t0, "read_after": after,
            "events_read": report["through_sequence"] - after,
            "through_sequence": report["through_sequence"],
            "ledger_bytes": len(raw) if raw else 0,
            "open_positions": len(job.ledger.open), "signals_remembered": len(job.ledger.signals),
            "orphans": len(report["orphan_trades"]), "issues": len(report["issues"])}


@contextlib.asynccontextmanager
async def aclient(namespace: str):
    """A RedisClient in the benchmark's namespace, closed on leaving."""
    client = RedisClient(namespace=namespace, url=REDIS_URL)
    try:
        yield client
    finally:
        await client.close()


async def cleanup_redis(namespace: str) -> int:
    async with aclient(namespace) as client:
        return await client.clear()  # this namespace's keys only


# ---- main ----------------------------------------------------------------------------------

def spread(values: list[float], digits: int = 2) -> str:
    return h.spread_of(values, digits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="events in the trail")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--after", type=int, default=1000,
                        help="events appended between the first start and the restart")
    args = parser.parse_args()
    logger.remove()  # the clients' connection notes; warnings (a ledger not taken up) stay
    logger.add(sys.stderr, level="WARNING")
    machine = h.machine()
    machine["affinity"] = sorted(os.sched_getaffinity(0))
    namespace = f"benchrecon{uuid.uuid4().hex[:8]}"
    name, dsn = create_db("recon")
    rounds: list[dict] = []
    try:
        asyncio.run(migrate(dsn, months_back(args.rows + 86400)))
        print(f"database {name}: seeding {args.rows:,} events ...", flush=True)
        seed_s = seed(dsn, args.rows)
        print(f"seeded in {seed_s:.1f} s", flush=True)
        head = args.rows
        for r in range(args.rounds):
            first = asyncio.run(start_once(dsn, namespace, forget=True))
            if first["read_after"] != 0 or first["through_sequence"] != head:
                raise RuntimeError(f"the first start did not read the whole trail: {first}")
            copy_events(dsn, head + 1, head + args.after, datetime.now(UTC),
                        timedelta(milliseconds=1))
            head += args.after
            again = asyncio.run(start_once(dsn, namespace, forget=False))
            if again["read_after"] != first["through_sequence"] or again["through_sequence"] != head:
                raise RuntimeError(f"the restart did not take up the saved ledger: {again}")
            rounds.append({"first_start": first, "restart": again})
            print(f"round {r + 1}: first start {first['seconds']:.2f} s ({first['events_read']:,}"
                  f" events), restart {again['seconds']:.3f} s ({again['events_read']:,} events,"
                  f" take-up {again['take_up_seconds'] * 1000:.1f} ms)", flush=True)
    finally:
        removed = asyncio.run(cleanup_redis(namespace))
        drop_db(name)
        print(f"dropped database {name}; deleted {removed} Redis key(s) of {namespace}")
    machine["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    def col(kind: str, field: str) -> list[float]:
        return [r[kind][field] for r in rounds]

    first_s, restart_s = col("first_start", "seconds"), col("restart", "seconds")
    met = statistics.median(restart_s) <= TARGET_S and max(restart_s) <= TARGET_S
    last = rounds[-1]

    def span(values: list[int]) -> str:
        lo, hi = min(values), max(values)
        return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"

    table = [
        "| start | events in the trail | events read | first run, s | take-up of the saved ledger, ms | target |",
        "|---|---|---|---|---|---|",
        f"| first start, no saved ledger | {span(col('first_start', 'through_sequence'))}"
        f" | {span(col('first_start', 'events_read'))} | {spread(first_s)} | — | |",
        f"| restart with the saved ledger ({last['first_start']['ledger_bytes'] / 1024:,.0f} KiB)"
        f" | {span(col('restart', 'through_sequence'))} | {span(col('restart', 'events_read'))}"
        f" | {spread(restart_s, 3)}"
        f" | {spread([x * 1000 for x in col('restart', 'take_up_seconds')], 1)}"
        f" | ≤ {TARGET_S:g} s: {'met' if met else 'NOT met'} |",
    ]
    print()
    print(f"load average {machine['load_avg_at_start']} at the start, "
          f"{machine['load_avg_at_end']} at the end; CPUs {machine['affinity']} for this process")
    print(f"median (min–max) of {args.rounds} round(s); seeding took {seed_s:.1f} s")
    print("\n".join(table))
    print(f"\nledger: {last['first_start']['open_positions']} open positions, "
          f"{last['first_start']['signals_remembered']:,} signal ids, "
          f"{last['first_start']['orphans']} orphan trades in the report")
    out = h.save("reconciliation", {
        "machine": machine, "rows": args.rows, "rounds": args.rounds, "after": args.after,
        "seed_seconds": round(seed_s, 1), "target_seconds": TARGET_S, "target_met": met,
        "first_start_seconds": {"median": round(statistics.median(first_s), 3),
                                "min": round(min(first_s), 3), "max": round(max(first_s), 3)},
        "restart_seconds": {"median": round(statistics.median(restart_s), 4),
                            "min": round(min(restart_s), 4), "max": round(max(restart_s), 4)},
        "detail": rounds, "table": table,
    })
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
