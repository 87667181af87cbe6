"""allowed_targets: where probes may connect, judged on the address actually connected to.

services.yaml's optional `allowed_targets` lists networks (`10.0.0.0/8`, a single address)
and `host:port` pairs. A probe may connect to an address inside a listed network (any
port), or to a listed host:port as the service names it (the host as written in its URL
or address, or the resolved address). Each prober checks the addresses it is about to
connect to, after name resolution and for every redirect hop, so a DNS answer that
changes between configuration and probe cannot lead a probe elsewhere. Unix sockets have
no address to judge and are refused while a list is set. Without the list every
configured target is allowed.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from ...config.services import join_host_port, split_host_port

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetNotAllowed(PermissionError):
    """A probe target outside allowed_targets; the message says which address and why."""


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 scope id
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TargetGuard:
    """The parsed allowed_targets list; `allows` and `check` judge one address."""

    def __init__(self, allowed: Iterable[str]) -> None:
        networks: list[Network] = []
        pairs: set[tuple[str, int]] = set()
        for item in allowed:
            hp = split_host_port(item) if "/" not in item else None
            if hp is not None:
                host, port = hp
                pairs.add((_canonical(host), port))
            else:
                networks.append(ipaddress.ip_network(item, strict=False))
        self.networks: tuple[Network, ...] = tuple(networks)
        self.pairs: frozenset[tuple[str, int]] = frozenset(pairs)

    def allows(self, host: str, address: str, port: int) -> bool:
        """True when connecting to `address`:`port` (resolved from `host`) is allowed."""
        try:
            ip = _address(address)
        except ValueError:
            return False
        if any(ip in net for net in self.networks):
            return True
        return (_canonical(host), port) in self.pairs or (str(ip), port) in self.pairs

    def check(self, host: str, address: str, port: int) -> None:
        """Raise TargetNotAllowed unless `allows(host, address, port)`."""
        if not self.allows(host, address, port):
            raise TargetNotAllowed(describe(host, address, port))

    def filter_infos(self, host: str, port: int, infos: Sequence[Any]) -> list[Any]:
        """The getaddrinfo() entries that may be connected to; TargetNotAllowed when none."""
        allowed = [info for info in infos if self.allows(host, info[4][0], port)]
        if not allowed:
            first = infos[0][4][0] if infos else host
            raise TargetNotAllowed(describe(host, first, port))
        return allowed

    async def resolve(self, host: str, port: int) -> list[str]:
        """Allowed addresses of `host` (as getaddrinfo gives them); OSError when it does not resolve."""
        if host.startswith(("/", "@")) or not host:
            raise TargetNotAllowed(f"unix socket {host or '(default)'} is not covered by allowed_targets")
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(info[4][0] for info in self.filter_infos(host, port, infos)))


def _canonical(host: str) -> str:
    host = host.strip("[]").lower().rstrip(".")
    try:
        return str(_address(host))
    except ValueError:
        return host


def describe(host: str, address: str, port: int) -> str:
    """`10.1.2.3:80 is not in allowed_targets` (naming the host when it was a name)."""
    where = join_host_port(address, port)
    if _canonical(host) != _canonical(address):
        return f"{join_host_port(host, port)} resolves to {where}, which is not in allowed_targets"
    return f"{where} is not in allowed_targets"


@functools.lru_cache(maxsize=64)
def guard_for(allowed: tuple[str, ...]) -> TargetGuard | None:
    """The guard for a configuration's allowed_targets; None when there is no list."""
    return TargetGuard(allowed) if allowed else None
