"""What the new check types need from the machine, said at check-config time, and ICMP to
an address with no route inside a network namespace of the test's own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = shutil.which("usdcop-exporter", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.slow


def test_grpc_without_its_extra_is_refused_naming_the_extra(tmp_path):
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: pricing-grpc\n    type: grpc\n    address: 127.0.0.1:50051\n")
    # The interpreter with grpcio hidden, as on an install without the extra.
    code = ("import sys; sys.modules['grpc'] = None; from exporter.cli import main; "
            f"sys.exit(main(['check-config', {str(path)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "services.yaml:2: service 'pricing-grpc': field 'type': type grpc needs the grpc extra" in out.stderr
    assert "pip install 'usdcop-exporter[grpc]'" in out.stderr and "Traceback" not in out.stderr


def test_icmp_without_any_usable_socket_is_refused(tmp_path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if Path("/proc/sys/net/ipv4/ping_group_range").read_text().split() != ["1", "0"]:
        pytest.skip("net.ipv4.ping_group_range allows unprivileged ICMP here")
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: gw\n    type: icmp\n    host: 127.0.0.1\n")
    # Without CAP_NET_RAW, and no group in ping_group_range: neither socket can be opened.
    for command in (["check-config", str(path)], ["serve", "--config", str(path), "--listen", "127.0.0.1:0"]):
        out = subprocess.run([setpriv, "--bounding-set", "-net_raw", SCRIPT, *command],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode in (1, 2), (command, out.stderr)
        assert "type icmp cannot work here" in out.stderr and "ping_group_range" in out.stderr
        assert "Traceback" not in out.stderr


def test_icmp_to_an_address_with_no_route_is_unreachable(tmp_path):
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: gw\n    type: icmp\n    host: 10.255.255.1\n    count: 2\n"
                    "  - name: lo\n    type: icmp\n    host: 127.0.0.1\n")
    # A namespace with loopback up and no other route.
    script = f"ip link set lo up && {SCRIPT} probe gw --config {path}; echo; {SCRIPT} probe lo --config {path}"
    out = subprocess.run([unshare, "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    first, _, second = out.stdout.strip().partition("\n}\n")
    gw, lo = json.loads(first + "\n}"), json.loads(second)
    assert (gw["status"], gw["metadata"]["probe"]["reason"]) == ("unhealthy", "unreachable")
    assert "Network is unreachable" in gw["metadata"]["probe"]["message"]
    assert lo["status"] == "healthy"


def test_icmp_over_an_unprivileged_datagram_socket(tmp_path):
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare is None or setpriv is None:
        pytest.skip("unshare or setpriv (util-linux) is not installed")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: lo\n    type: icmp\n    host: 127.0.0.1\n    count: 2\n")
    # ping_group_range belongs to the network namespace: opened to every group in ours
    # only. Without CAP_NET_RAW no raw socket can be opened, so the datagram one is used.
    script = (f"ip link set lo up && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range"
              f" && {setpriv} --bounding-set -net_raw {SCRIPT} probe lo --config {path}")
    out = subprocess.run([unshare, "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    health = json.loads(out.stdout)
    assert (health["status"], health["metadata"]["probe"]["loss_ratio"]) == ("healthy", 0.0)
