"""When the kernel received a connection's last data, for an end time the loop cannot delay.

Linux keeps, per TCP connection, the time its last data segment arrived, and reports its
age in milliseconds (`tcpi_last_data_recv` of TCP_INFO), counted in scheduler ticks: the
age is exact to within one tick either way, and a tick is at most 10 ms (HZ=100). When
the event loop comes round to an answer more than a tick after the kernel had it, the
end time is moved back to the kernel's receive time plus one tick: never before the data
arrived, and no longer as late as the loop was. Elsewhere (no TCP_INFO, a socket that is
not TCP) the callback's own time stands.

Better still, where the prober reads the socket itself (plain HTTP), the kernel stamps
each read with the time its data arrived (SO_TIMESTAMPNS): exact to the microsecond,
however late the loop came round (`stamp_reads`, `stamped_at`).
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import time
from typing import Any

TICK = 0.010  # the coarsest kernel tick: the age is exact to within this either way
_TCP_INFO = getattr(socket, "TCP_INFO", None) if hasattr(socket, "IPPROTO_TCP") else None
_LAST_DATA_RECV = struct.Struct("I")  # tcpi_last_data_recv, ms
_OFFSET = 52  # of tcpi_last_data_recv in struct tcp_info (linux/tcp.h)
_SIZE = _OFFSET + 4


def received_at(transport: Any, now: float, floor: float) -> float:
    """The arrival time of `transport`'s last data on the perf_counter clock, between
    `floor` (when the request went out) and `now` (the callback's own time)."""
    if _TCP_INFO is None or transport is None:
        return now
    sock = transport.get_extra_info("socket")
    if sock is None:
        return now
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _SIZE)
    except (OSError, AttributeError):
        return now
    if len(info) < _SIZE:
        return now
    age = _LAST_DATA_RECV.unpack_from(info, _OFFSET)[0] / 1000.0
    if age <= TICK:
        return now
    return max(floor, now - age + TICK)


# The exact receive time of each read, where the kernel stamps it: SO_TIMESTAMPNS makes
# every recvmsg() carry the wall-clock time its last segment arrived (SCM_TIMESTAMPNS).
# Its number is 35 on the architectures listed (asm-generic); elsewhere it is left off.
_STAMPED = sys.platform == "linux" and platform.machine() in (
    "x86_64", "amd64", "aarch64", "arm64", "i686", "i386", "armv7l", "armv6l", "riscv64",
    "ppc64le", "ppc64", "s390x")
SO_TIMESTAMPNS = 35
ANCILLARY = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_TIMESPEC = struct.Struct("qq")


def stamp_reads(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each read of `sock` with its receive time → whether it will."""
    if not _STAMPED or not ANCILLARY:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def stamped_at(ancdata: list[tuple[int, int, bytes]], now: float, floor: float) -> float | None:
    """The receive time a stamped read carried, on the perf_counter clock (`now` is the
    perf_counter time of the read), kept between `floor` and `now`; None without a stamp."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(data)
            age = time.time() - (sec + nsec * 1e-9)
            return min(now, max(floor, now - age))
    return None
