"""The storage interface both backends implement, and the values passed across it.

Keys here are full keys (namespace included) and values raw bytes: the RedisClient on
top does namespacing and JSON. Write batches given to `execute` are atomic: all of them
or none (MULTI/EXEC on Redis), and a list push onto a key of another type is refused
before anything is written.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from .errors import CacheTypeError


@dataclass(frozen=True)
class SetOp:
    """SET key value, with a TTL in seconds (0: no expiry)."""

    key: str
    value: bytes
    ttl: float


@dataclass(frozen=True)
class DeleteOp:
    """DEL key."""

    key: str


@dataclass(frozen=True)
class PushOp:
    """LPUSH key value, then keep the newest `cap` elements (LTRIM).

    With `skip_if_head`, nothing is pushed when the list's head already holds exactly
    `value`: a client retrying a write whose answer it never got adds no duplicate.
    """

    key: str
    value: bytes
    cap: int
    skip_if_head: bool = False


WriteOp = SetOp | DeleteOp | PushOp


def check_types(ops: Sequence[WriteOp], kinds: Mapping[str, str]) -> None:
    """Refuse a batch whose push would meet another type than a list, before anything is
    written. `kinds` is each key's type now ("none", "list", "string", ...; a key left out
    is "none"); each op's effect on its key's type is followed in order."""
    kinds = dict(kinds)
    for op in ops:
        if isinstance(op, PushOp):
            kind = kinds.get(op.key, "none")
            if kind not in ("none", "list"):
                raise CacheTypeError(f"{op.key} holds a {kind}, not a list")
            kinds[op.key] = "list"
        elif isinstance(op, SetOp):
            kinds[op.key] = "string"
        else:
            kinds[op.key] = "none"


@dataclass(frozen=True)
class RawValue:
    """What a bounded read found at one key.

    `kind` is the Redis type seen. For a string, `data` is its first `max_bytes + 1`
    bytes (so `truncated` tells an oversize value without reading all of it) and
    `length` its size; for a list, `data` is the head element and `length` the list's
    length.
    """

    kind: Literal["missing", "string", "list", "other"]
    data: bytes | None = None
    length: int = 0
    truncated: bool = False


@runtime_checkable
class Backend(Protocol):
    """Storage the RedisClient runs on: in memory, or Redis."""

    kind: str  # "memory" or "redis"
    up: bool | None  # reachability as last seen; None before the first use (memory: None)

    async def get(self, key: str) -> bytes | None:
        """The string at `key`, or None."""
        ...

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Strings at several keys, in one round trip (None for missing or non-strings)."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store a string; ttl 0 means no expiry."""
        ...

    async def delete(self, keys: Sequence[str]) -> int:
        """Delete keys; how many existed."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether `key` exists (and has not expired)."""
        ...

    async def scan(self, pattern: str, limit: int | None = None) -> list[str]:
        """Keys matching a glob pattern, at most `limit` of them (None: all)."""
        ...

    async def list_range(self, key: str, start: int, stop: int) -> list[bytes]:
        """LRANGE semantics: inclusive stop, negative indexes from the end."""
        ...

    async def list_len(self, key: str) -> int:
        """Length of the list at `key` (0 when missing)."""
        ...

    async def execute(self, ops: Sequence[WriteOp]) -> list[int]:
        """Apply writes atomically; per op: 1 for a set, keys removed, or the list's new length."""
        ...

    async def compare_and_delete(self, key: str, expected: bytes) -> bool:
        """Delete `key` only if it still holds exactly `expected`."""
        ...

    async def read_many(self, keys: Sequence[str], max_bytes: int,
                        lists: Collection[str] = ()) -> list[RawValue]:
        """Bounded reads of several keys as one consistent snapshot (one round trip).

        Only keys named in `lists` have a list's head and length read; any other key
        found holding a list comes back as kind "list" without data.
        """
        ...

    def mark_down(self, reason: str) -> None:
        """Record that a caller found the backend unreachable (e.g. a time box expired)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
