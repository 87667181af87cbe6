"""Shared pieces of the comparison benchmarks: pinned processes, CPU and memory of a
process from /proc, the local targets, blackbox_exporter, the sidecar, wrk.

Core layout on the 2-vCPU machine class: the code under test (blackbox_exporter or the
sidecar) runs alone on SUT_CORE; the target and the load generator share LOAD_CORE.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent)) or "usdcop-exporter"
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
SUT_CORE = os.environ.get("BENCH_SUT_CORE", "1")
LOAD_CORE = os.environ.get("BENCH_LOAD_CORE", "0")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


def pct(values: list[float], q: float) -> float:
    """Percentile by linear interpolation (numpy's default)."""
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def spread_of(values: list[float], digits: int = 0) -> str:
    """"median (min–max)" of repeated measurements."""
    if not values:
        return "n/a"
    fmt = f"{{:.{digits}f}}"
    med = fmt.format(pct(values, 0.5))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    return rss / 1024, hwm / 1024


class Proc:
    """A background process pinned to a core; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, argv: list[str], core: str, env: dict | None = None, log: Path | None = None):
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        self.popen = subprocess.Popen(["taskset", "-c", core, *argv], env=env, stdout=out,
                                      stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
        self.pid = self.popen.pid  # taskset execs the program: same pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_target(delay_ms: float = 0.0) -> tuple[Proc, int]:
    """bench/rawtarget.py on the load core → (process, port)."""
    port = free_port()
    proc = Proc([PYTHON, str(BENCH / "rawtarget.py"), str(port), str(delay_ms)], LOAD_CORE)
    wait_port(port)
    return proc, port


def start_blackbox(workdir: Path) -> tuple[Proc, int]:
    """blackbox_exporter with an `http_2xx` module on the SUT core → (process, port)."""
    config = workdir / "blackbox.yml"
    config.write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
        "      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n"
    )
    port = free_port()
    proc = Proc([BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=error"], SUT_CORE)
    wait_port(port)
    return proc, port


def blackbox_probe_url(port: int, target_port: int) -> str:
    """The /probe URL blackbox_exporter answers for the local target."""
    return (f"http://127.0.0.1:{port}/probe?module=http_2xx"
            f"&target=http://127.0.0.1:{target_port}/health")


def services_yaml(path: Path, target_port: int, count: int, interval: str, prefix: str = "svc",
                  extra: tuple[tuple[str, int, str, str], ...] = ()) -> Path:
    """A services file: `count` http services on the target, plus (prefix, count, url,
    interval) groups."""
    lines = ["services:"]
    groups = [(prefix, count, f"http://127.0.0.1:{target_port}/health", interval), *extra]
    for name, n, url, every in groups:
        for i in range(n):
            lines += [f"  - name: {name}-{i:05d}", f"    url: {url}", f"    interval: {every}",
                      "    timeout: 5s"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_sidecar(workdir: Path, config: Path, *, scheduler: bool, uvloop: bool = True,
                  env: dict | None = None) -> tuple[Proc, int]:
    """`usdcop-exporter serve` on the SUT core, embedded stores under `workdir` → (process, port)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("EXPORTER_", "REDIS_", "POSTGRES_", "AUDIT_", "LOG_"))}
    environ.update(LOG_LEVEL="warning", LOG_FORMAT="json",
                   AUDIT_SQLITE_PATH=str(workdir / "audit.sqlite3"),
                   AUDIT_SPOOL_DIR=str(workdir / "spool"),
                   AUDIT_CHECKPOINT_DIR=str(workdir / "checkpoints"), **(env or {}))
    args = ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    if not scheduler:
        args.append("--no-scheduler")
    args += ["--loop", "uvloop" if uvloop else "asyncio"]
    argv = [SCRIPT, *args]
    proc = Proc(argv, SUT_CORE, env=environ, log=workdir / f"sidecar-{port}.log")
    wait_port(port, timeout=60)
    return proc, port


def http_get(url: str, headers: dict | None = None, timeout: float = 60.0) -> bytes:
    """GET → body (raises on HTTP errors)."""
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def metric_sum(text: str, name: str, label_filter: str = "") -> float:
    """Sum of the samples of `name` whose label set contains `label_filter`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ ") and label_filter in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class WrkResult:
    """What one wrk run reported."""

    requests: int
    seconds: float
    rate: float
    errors: int


def wrk(url: str, seconds: float, connections: int = 64) -> WrkResult:
    """Drive `url` with wrk on the load core (one thread, `connections` keep-alive connections)."""
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
         "--timeout", "10s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    dur_val, unit = re.search(r"requests in ([\d.]+)(\w+)", out).groups()
    dur = float(dur_val) * {"s": 1.0, "ms": 1e-3, "m": 60.0}[unit]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return WrkResult(requests, dur, requests / dur, errors)


def machine() -> dict:
    """A short description of the machine the figures come from."""
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    return {
        "cpu": cpu.group(1) if cpu else "?",
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "python": sys.version.split()[0],
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def workdir(prefix: str) -> Path:
    """A fresh temporary directory for one benchmark run."""
    return Path(tempfile.mkdtemp(prefix=f"usdcop-bench-{prefix}-"))


def save(name: str, payload: dict) -> Path:
    """Write a result file under bench/results/ (JSON)."""
    out = BENCH / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out
