"""Scale-out on engines that already exist (docs/operations.md).

- `--shard i/N`: two real sidecars over one services file probe and export every service
  exactly once between them, each API answering for its own share;
- `shard_of()` is Prometheus' own `hashmod`, checked against a real Prometheus;
- two sidecars on one Redis and one Postgres share the cache and keep one valid audit chain.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from exporter.health.shard import shard_of
from tests.cache.helpers import make_signal
from tests.support.sidecars import SCRIPT, Sidecar, clean_env, request, series_services, wait_until
from tests.support.tools import free_port, require_tool

pytestmark = pytest.mark.slow

NAMES = [f"svc-{i:02d}" for i in range(24)] + ["trading-api", "ml-analytics", "pipeline-api",
                                               "websocket", "postgres", "redis"]


@pytest.fixture
def listener():
    """A TCP port that accepts connections (the kernel completes them from the backlog)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        yield sock.getsockname()[1]


def services_file(path: Path, port: int, interval: str = "1s") -> Path:
    lines = ["services:"]
    for name in NAMES:
        lines += [f"  - name: {name}", "    type: tcp", f"    address: 127.0.0.1:{port}",
                  f"    interval: {interval}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_pair(tmp_path: Path, config: Path, extra_args=(), **env) -> list[Sidecar]:
    """Shards 0/2 and 1/2 over one services file, started together."""
    pair = []
    for index in range(2):
        work = tmp_path / f"shard{index}"
        work.mkdir()
        pair.append(Sidecar(["--config", str(config), "--shard", f"{index}/2", *extra_args],
                            clean_env(work, **env)))
    try:
        for sidecar in pair:
            sidecar.wait_ready()
    except BaseException:
        for sidecar in pair:
            sidecar.stop()
        raise
    return pair


def test_two_shards_cover_every_service_exactly_once(tmp_path, listener):
    config = services_file(tmp_path / "services.yaml", listener)
    pair = start_pair(tmp_path, config)
    try:
        shares = []
        for index, sidecar in enumerate(pair):
            status, body = sidecar.get("/api/health/services")
            assert status == 200 and body["shard"] == f"{index}/2"
            names = {s["service"] for s in body["services"]}
            assert names == {n for n in NAMES if shard_of(n, 2) == index}
            shares.append(names)
        assert shares[0] | shares[1] == set(NAMES) and not shares[0] & shares[1]
        assert shares[0] and shares[1]

        # Scheduled mode: each probes its own share, and exports only that.
        for sidecar, share in zip(pair, shares, strict=True):
            def probed(sidecar=sidecar, share=share):
                text = sidecar.get("/metrics")[1]
                return text if series_services(text, "usdcop_service_up") == share else None

            text = wait_until(probed, what="every service of the share probed")
            assert series_services(text, "usdcop_service_info") == share
            assert 'usdcop_service_status{service="' in text

        # The API answers for its own share and says so for the others.
        for index, sidecar in enumerate(pair):
            own, other = sorted(shares[index])[0], sorted(shares[1 - index])[0]
            status, body = sidecar.post("/api/health/services", {"service": own})
            assert status == 200 and body["service"] == own and body["status"] == "healthy"
            status, body = sidecar.post("/api/health/services", {"service": other})
            assert status == 404 and body["error"] == "not_in_shard", body
            status, body = sidecar.post("/api/health/services", {"service": "no-such-service"})
            assert status == 404 and body["error"] != "not_in_shard"
            # /probe serves any service of the file: Prometheus' own sharding drives it
            status, text = sidecar.get(f"/probe?service={other}")
            assert status == 200 and "probe_success 1" in text
    finally:
        codes = [sidecar.stop() for sidecar in pair]
    assert codes == [0, 0]


def test_shard_of_is_prometheus_hashmod(tmp_path):
    prometheus = require_tool("prometheus")
    rng = random.Random(8)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_"
    names = NAMES + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(170)]
    names = sorted(set(names))
    moduli = (2, 3, 7)
    sd = tmp_path / "targets.json"
    sd.write_text(json.dumps([{"targets": ["127.0.0.1:9"], "labels": {"service": n}} for n in names]))
    jobs = []
    for modulus in moduli:
        jobs.append({
            "job_name": f"mod{modulus}",
            "scrape_interval": "1h",
            "file_sd_configs": [{"files": [str(sd)], "refresh_interval": "1h"}],
            "relabel_configs": [
                {"source_labels": ["service"], "modulus": modulus, "target_label": "__tmp_hash",
                 "action": "hashmod"},
                {"source_labels": ["__tmp_hash"], "target_label": "shard"},
            ],
        })
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1h"}, "scrape_configs": jobs}))
    port = free_port()
    proc = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={tmp_path / 'data'}", "--log.level=error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def targets():
            try:
                status, body = request("GET", f"http://127.0.0.1:{port}/api/v1/targets?state=active")
            except OSError:
                return None
            active = body["data"]["activeTargets"] if status == 200 else []
            return active if len(active) == len(names) * len(moduli) else None

        active = wait_until(targets, timeout=60, what="Prometheus to discover every target")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    seen = {(t["labels"]["job"], t["labels"]["service"]): int(t["labels"]["shard"]) for t in active}
    for modulus in moduli:
        for name in names:
            assert seen[(f"mod{modulus}", name)] == shard_of(name, modulus), (name, modulus)


def _post_events(sidecar: Sidecar, run: str, count: int, out: list) -> None:
    for k in range(count):
        status, body = sidecar.post("/api/audit/signals", {
            "event_type": "TRADE_EXECUTED", "event_id": str(uuid.uuid4()), "symbol": "USDCOP",
            "data": {"trade_id": f"{run}-{k}", "price": 4100 + k},
        })
        out.append((status, body))


def test_two_sidecars_share_redis_and_keep_one_audit_chain(tmp_path, listener, redis_url,
                                                             redis_namespace, pg_dsn):
    config = services_file(tmp_path / "services.yaml", listener, interval="1h")
    pair = start_pair(tmp_path, config, ["--no-scheduler"], REDIS_URL=redis_url,
                      REDIS_NAMESPACE=redis_namespace, POSTGRES_URL=pg_dsn, MIRROR_INTERVAL="200ms")
    a, b = pair
    try:
        for sidecar in pair:
            status, body = sidecar.get("/readyz")
            assert status == 200, body

        # Cache: what one writes, the other reads and mirrors into its /metrics.
        signal = make_signal("USDCOP", signal_id="sig-shared-1", price=4321.5)
        assert a.post("/api/cache/signals", signal)[0] == 201
        status, body = b.get("/api/cache/signals?type=latest&symbol=USDCOP")
        assert status == 200 and body["signal"]["signal_id"] == "sig-shared-1"
        assert b.post("/api/cache/signals", make_signal("EURUSD", signal_id="sig-shared-2"))[0] == 201
        status, body = a.get("/api/cache/signals?type=history&symbol=EURUSD")
        assert status == 200 and [s["signal_id"] for s in body["signals"]] == ["sig-shared-2"]
        wait_until(lambda: 'usdcop_signal_price{symbol="USDCOP"} 4321.5' in b.get("/metrics")[1],
                   what="the signal written through one sidecar in the other's /metrics")

        # Audit: both append at once; one gap-free chain that both verify.
        results: list = []
        threads = [threading.Thread(target=_post_events, args=(s, name, 30, results))
                   for s, name in ((a, "a"), (b, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [status for status, _ in results] == [201] * 60, results[:3]
        sequences = sorted(body["sequence"] for _, body in results)
        assert len(set(sequences)) == 60
        for sidecar in pair:
            status, verdict = sidecar.get("/api/audit/verify?full=true")
            assert status == 200 and verdict["ok"] is True and verdict["first_broken"] is None, verdict
            assert verdict["checked"] == verdict["head_sequence"] >= sequences[-1]
        status, page = a.get("/api/audit/signals?limit=1000")
        stored = [e["sequence"] for e in page["events"]]
        assert stored == list(range(max(stored), 0, -1))  # gap-free, newest first
        trades = [e["data"]["trade_id"] for e in page["events"] if e["event_type"] == "TRADE_EXECUTED"]
        assert sorted(trades) == sorted([f"a-{k}" for k in range(30)] + [f"b-{k}" for k in range(30)])
    finally:
        codes = [sidecar.stop() for sidecar in pair]
    assert codes == [0, 0]
    # And offline, from the database alone, with the command line.
    env = clean_env(tmp_path / "shard0", POSTGRES_URL=pg_dsn)
    out = subprocess.run([SCRIPT, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
