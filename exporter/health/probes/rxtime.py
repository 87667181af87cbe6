"""When the kernel received a connection's last data, for an end time the loop cannot delay.

Linux keeps, per TCP connection, the time its last data segment arrived, and reports its
age in milliseconds (`tcpi_last_data_recv` of TCP_INFO), counted in scheduler ticks: the
age is exact to within one tick either way, and a tick is at most 10 ms (HZ=100). When
the event loop comes round to an answer more than a tick after the kernel had it, the
end time is moved back to the kernel's receive time plus one tick: never before the data
arrived, and no longer as late as the loop was. Elsewhere (no TCP_INFO, a socket that is
not TCP) the callback's own time stands.
"""

from __future__ import annotations

import socket
import struct
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
