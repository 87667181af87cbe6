"""The socket under one probe's exchange: connect, send at once, read with the kernel's times.

`open_socket` connects a non-blocking socket to an address already resolved and allowed.
When the exchange has its request ready (plain HTTP), the request goes out in the same
step as the connect if the connection is already up, as it is on loopback where the
handshake ends inside the connect call; otherwise in the step that sees the connect done
(the socket writable). Either way it is not left for a later callback: on loopback a
busy loop adds nothing to the request's start.

`SocketLink` then reads that socket itself (plain HTTP; TLS goes through the loop's
transport and `start_tls`), each read stamped by the kernel with the time its data arrived
when the platform allows (`rxtime.stamp_reads`), and hands the bytes and that time to the
exchange: the answer's end is when its last byte arrived, however late the loop looked.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from time import perf_counter
from typing import Any, Protocol

from .rxtime import ANCILLARY, stamp_reads, stamped_at

READ_SIZE = 65536  # bytes taken per read


class Receiver(Protocol):
    """What the link drives: an exchange's request and answer handling."""

    head: bytes | None
    connected: float | None
    sent_at: float
    stamp: float | None
    transport: Any

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> bool | None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


def _sockaddr(address: str, port: int) -> tuple[int, tuple[Any, ...]]:
    """(family, socket address) of an IP literal; IPv6 through getaddrinfo for its scope id."""
    if ":" not in address:
        return socket.AF_INET, (address, port)
    info = socket.getaddrinfo(address, port, socket.AF_INET6, socket.SOCK_STREAM, 0,
                              socket.AI_NUMERICHOST)
    return socket.AF_INET6, info[0][4]


async def _writable(sock: socket.socket) -> None:
    """Until `sock` is writable (a connect has ended, one way or the other, or room freed)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    fd = sock.fileno()
    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


def _send(sock: socket.socket, exchange: Receiver) -> bool:
    """Send what is left of the request → whether the connection took it (or part of it).

    The times are taken before the call: on loopback the answer can arrive, stamped by
    the kernel, while the call that sent the request is still returning. `sent_at` is when
    the request's last byte went out."""
    began = perf_counter()
    try:
        sent = sock.send(exchange.head)  # type: ignore[arg-type]
    except (BlockingIOError, InterruptedError):
        return False  # still connecting, or no room yet
    if exchange.connected is None:
        exchange.connected = began
    exchange.head = exchange.head[sent:] or None  # type: ignore[index]
    if exchange.head is None:
        exchange.sent_at = began
    return True


async def open_socket(address: str, port: int, exchange: Receiver) -> socket.socket:
    """A socket connected to address:port, the exchange's request sent (or begun) when it
    has one; OSError when the connection fails."""
    family, sockaddr = _sockaddr(address, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if exchange.head is not None:
            stamp_reads(sock)
        err = sock.connect_ex(sockaddr)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        if exchange.head is not None and _send(sock, exchange):
            return sock
        if err:
            await _writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
        if exchange.connected is None:
            exchange.connected = perf_counter()
        if exchange.head is not None:
            _send(sock, exchange)  # as the connect is seen done; the link writes any rest
        return sock
    except BaseException:
        sock.close()
        raise


class SocketLink:
    """The exchange's own reader, and writer of what the connect step could not send of
    its request, over a connected socket; `abort()` stops both and closes it.

    Reading starts at once, writing goes on beside it: a server may answer (and close)
    before it has read the whole request, and that answer counts. A failed write ends the
    writing only; the read side then sees how the connection ended."""

    __slots__ = ("loop", "sock", "fd", "exchange", "closed", "writing")

    def __init__(self, sock: socket.socket, exchange: Receiver) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.fd = sock.fileno()
        self.exchange = exchange
        self.closed = False
        self.writing = False
        exchange.transport = self
        self.loop.add_reader(self.fd, self._readable)
        if exchange.head is not None:
            self.writing = True
            self.loop.add_writer(self.fd, self._write_more)

    def _write_more(self) -> None:
        try:
            _send(self.sock, self.exchange)
        except OSError:
            self.exchange.head = None  # the peer is gone or refuses more: nothing more to send
        if self.exchange.head is None:
            self._stop_writing()

    def _stop_writing(self) -> None:
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.fd)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    def _readable(self) -> None:
        exchange = self.exchange
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(READ_SIZE, ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.abort()
            exchange.connection_lost(exc)
            return
        exchange.stamp = stamped_at(ancdata, perf_counter(),
                                    exchange.sent_at or exchange.connected or 0.0)
        if data:
            exchange.data_received(data)
            return
        exchange.eof_received()
        self.abort()
        exchange.connection_lost(None)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self._stop_writing()  # no callback may be left on a closed (and reused) fd
            self.loop.remove_reader(self.fd)
            self.sock.close()
            self.exchange = None  # the exchange refers to its link: no cycle left behind
