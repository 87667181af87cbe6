"""CPU per probe of the dns, icmp and websocket check types, against blackbox_exporter's
dns and icmp modules, in the same run.

    .venv/bin/python bench/compare_protocols.py [--rounds 3] [--seconds 8] [--connections 16]

blackbox_exporter and the sidecar (`/probe`, scheduler off, uvloop when installed) each run
alone on BENCH_SUT_CORE; the targets (bench/prototargets.py: a dnslib DNS server, an
aiohttp WebSocket server) and wrk share BENCH_LOAD_CORE; ICMP goes to 127.0.0.1. Each
round runs every contender in turn, so they share the machine's background noise; the
median of the rounds is kept. Reported: probes per second and CPU microseconds per probe
(user + system of the process under test, from /proc). blackbox_exporter has no
WebSocket module, so websocket has no counterpart. Results go to
bench/results/compare_protocols.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

BLACKBOX_MODULES = """modules:
  dns:
    prober: dns
    timeout: 5s
    dns:
      query_name: trading-api.internal
      query_type: A
      transport_protocol: udp
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def sidecar_config(path: Path, dns_port: int, ws_port: int) -> Path:
    path.write_text(f"""services:
  - name: dns
    type: dns
    server: 127.0.0.1:{dns_port}
    query_name: trading-api.internal
  - name: icmp
    type: icmp
    host: 127.0.0.1
  - name: websocket
    type: websocket
    url: ws://127.0.0.1:{ws_port}/ws
    expect: tick
""")
    return path


def measure(proc: h.Proc, url: str, seconds: float, connections: int) -> dict:
    body = h.http_get(url)
    assert b"probe_success 1" in body, body[:400]
    h.wrk(url, 1.0, connections)  # warm-up
    cpu0 = h.cpu_seconds(proc.pid)
    res = h.wrk(url, seconds, connections)
    cpu = h.cpu_seconds(proc.pid) - cpu0
    return {"probes_per_s": res.rate, "cpu_us_per_probe": cpu / max(res.requests, 1) * 1e6,
            "errors": res.errors}


def one_round(dns_port: int, ws_port: int, seconds: float, connections: int) -> dict:
    out: dict[str, dict] = {}
    work = h.workdir("bbproto")
    (work / "blackbox.yml").write_text(BLACKBOX_MODULES)
    port = h.free_port()
    bb = h.Proc([h.BLACKBOX, f"--config.file={work / 'blackbox.yml'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"], h.SUT_CORE)
    try:
        h.wait_port(port)
        base = f"http://127.0.0.1:{port}/probe"
        out["blackbox dns"] = measure(bb, f"{base}?module=dns&target=127.0.0.1:{dns_port}",
                                      seconds, connections)
        out["blackbox icmp"] = measure(bb, f"{base}?module=icmp&target=127.0.0.1", seconds,
                                       connections)
    finally:
        bb.stop()
    work = h.workdir("proto")
    config = sidecar_config(work / "services.yaml", dns_port, ws_port)
    sidecar, port = h.start_sidecar(work, config, scheduler=False)
    try:
        for name in ("dns", "icmp", "websocket"):
            out[f"sidecar {name}"] = measure(
                sidecar, f"http://127.0.0.1:{port}/probe?service={name}", seconds, connections)
    finally:
        sidecar.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    dns_port, ws_port = h.free_port(), h.free_port()
    targets = h.Proc([h.PYTHON, str(h.BENCH / "prototargets.py"), str(dns_port), str(ws_port)],
                     h.LOAD_CORE)
    try:
        h.wait_port(ws_port)
        rounds = [one_round(dns_port, ws_port, args.seconds, args.connections)
                  for _ in range(args.rounds)]
    finally:
        targets.stop()
    table = {}
    for name in rounds[0]:
        table[name] = {key: statistics.median(r[name][key] for r in rounds)
                       for key in ("probes_per_s", "cpu_us_per_probe", "errors")}
    print(f"{'contender':<18} {'probes/s':>10} {'CPU µs/probe':>13} {'vs blackbox':>12}")
    for name, row in table.items():
        kind = name.split()[-1]
        ref = table.get(f"blackbox {kind}")
        ratio = (f"{row['cpu_us_per_probe'] / ref['cpu_us_per_probe']:.2f}x"
                 if ref and not name.startswith("blackbox") else "")
        print(f"{name:<18} {row['probes_per_s']:>10.0f} {row['cpu_us_per_probe']:>13.0f} {ratio:>12}")
    saved = h.save("compare_protocols", {"machine": h.machine(), "args": vars(args),
                                         "rounds": rounds, "median": table})
    print(f"saved {saved}")


if __name__ == "__main__":
    main()
