"""Prometheus-compatible hashmod sharding of service names."""

from __future__ import annotations

import hashlib


def shard_of(name: str, count: int) -> int:
    """The shard of `name`: MD5, last 8 bytes as a big-endian integer, mod count (as hashmod)."""
    digest = hashlib.md5(name.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % count


def in_shard(name: str, index: int, count: int) -> bool:
    """True when `name` belongs to shard `index` of `count`."""
    return count <= 1 or shard_of(name, count) == index
