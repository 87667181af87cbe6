"""RedisClient: the cache client, JSON values under a namespace, on either backend."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .backend import Backend, DeleteOp, PushOp, SetOp, WriteOp
from .errors import CacheValueError
from .layout import NAMESPACE_RE, cache_label
from .memory import MemoryBackend
from .metrics import CacheMetrics
from .values import dumps, loads

if TYPE_CHECKING:
    from .redis_backend import RedisOptions

DEFAULT_TTL = 300.0
MAX_KEY_LENGTH = 1024


class RedisClient:
    """Async JSON cache: Redis when a URL is given, else the in-memory backend.

    `ttl` is the default expiry in seconds (a call's `ttl=None` uses it; `ttl=0` means no
    expiry). `max_entries` caps the in-memory backend's expiring entries (FIFO) and
    `max_bytes` (None: no budget) the bytes it holds (CacheFull beyond); Redis leaves both
    to its own `maxmemory` policy. `clock` drives in-memory TTLs (tests
    pass a fake one). `metrics` counts hits and misses of `get` under cache="generic".
    """

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        namespace: str = "usdcop",
        url: str | None = None,
        max_entries: int = 1000,
        *,
        max_bytes: int | None = None,
        backend: Backend | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: CacheMetrics | None = None,
        options: RedisOptions | None = None,
    ) -> None:
        self.default_ttl = _check_ttl(ttl, "ttl", allow_none=False)
        if not isinstance(namespace, str) or not NAMESPACE_RE.fullmatch(namespace):
            raise ValueError(f"namespace must match ^{NAMESPACE_RE.pattern}$, got {namespace!r}")
        self.namespace = namespace
        self.metrics = metrics
        self._prefix = namespace + ":"
        if backend is None:
            if url:
                from .redis_backend import RedisBackend  # redis-py only where it is used

                backend = RedisBackend(url, options)
            else:
                backend = MemoryBackend(
                    max_entries, clock=clock, on_evict=self._evicted, classify=self._label_of,
                    max_bytes=max_bytes,
                )
        self.backend: Backend = backend
        if metrics is not None and isinstance(backend, MemoryBackend):
            metrics.track_entries(backend.entries)

    @property
    def is_redis(self) -> bool:
        """True when the backend is a Redis server (not the in-memory default)."""
        return self.backend.kind == "redis"

    def key(self, key: str) -> str:
        """The full key: namespace + ':' + key."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"key {key[:40]!r}... is longer than {MAX_KEY_LENGTH} characters")
        return self._prefix + key

    def relative(self, full_key: str) -> str:
        """A full key without the namespace."""
        return full_key[len(self._prefix):] if full_key.startswith(self._prefix) else full_key

    def _label_of(self, full_key: str) -> str:
        return cache_label(self.relative(full_key))

    def _evicted(self, full_key: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.evicted(self._label_of(full_key), reason)

    def decode(self, key: str, raw: bytes) -> Any:
        """Parse a stored value; CacheValueError naming the key when it is not JSON."""
        try:
            return loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CacheValueError(f"{self.key(key)} does not hold JSON: {exc}") from None

    def encode(self, key: str, value: Any) -> bytes:
        """Serialise a value to JSON; CacheValueError naming the key when it cannot be."""
        try:
            return dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise CacheValueError(f"value for {key!r} is not JSON-serialisable: {exc}") from None

    def ttl_of(self, ttl: float | None) -> float:
        """The effective TTL of a write: None → the default, 0 → no expiry."""
        return self.default_ttl if ttl is None else _check_ttl(ttl, "ttl", allow_none=False)

    # -- the cache operations -----------------------------------------------------------------

    async def get(self, key: str, *, count: bool = True) -> Any | None:
        """The JSON value at `key`, or None. `count=False` leaves the generic hit/miss counters alone."""
        raw = await self.backend.get(self.key(key))
        if count and self.metrics is not None:
            self.metrics.request("generic", raw is not None)
        return None if raw is None else self.decode(key, raw)

    async def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        """Several values in one round trip (uncounted); None for missing keys."""
        raws = await self.backend.mget([self.key(k) for k in keys])
        return [None if raw is None else self.decode(k, raw) for k, raw in zip(keys, raws, strict=True)]

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store a JSON value; ttl None → the client's default, 0 → no expiry."""
        full, data, seconds = self.key(key), self.encode(key, value), self.ttl_of(ttl)
        await self.backend.set(full, data, seconds)

    async def delete(self, key: str) -> bool:
        """Delete `key`; True when it existed."""
        return await self.backend.delete([self.key(key)]) > 0

    async def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        return await self.backend.exists(self.key(key))

    async def keys(self, pattern: str = "*") -> list[str]:
        """Keys of this namespace matching a glob pattern, without the namespace."""
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"pattern must be a non-empty string, got {pattern!r}")
        found = await self.backend.scan(self._prefix + pattern)
        return sorted({self.relative(k) for k in found})

    async def clear(self) -> int:
        """Delete every key of this namespace; returns how many."""
        found = await self.backend.scan(self._prefix + "*")
        removed = 0
        for i in range(0, len(found), 500):
            removed += await self.backend.delete(found[i : i + 500])
        return removed

    async def list_push(self, key: str, value: Any, cap: int, *, skip_if_head: bool = False) -> int:
        """Push a JSON value at the head of a list kept to `cap` elements; the new length.

        `skip_if_head` pushes nothing when the head already holds the same value (so a
        retried write adds no duplicate).
        """
        op = PushOp(self.key(key), self.encode(key, value), _check_cap(cap), skip_if_head)
        return (await self.backend.execute([op]))[0]

    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[Any]:
        """Elements `start`..`stop` (inclusive, negative from the end), head first."""
        for name, value in (("start", start), ("stop", stop)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        raws = await self.backend.list_range(self.key(key), start, stop)
        return [self.decode(key, raw) for raw in raws]

    async def list_len(self, key: str) -> int:
        """Length of the list at `key` (0 when missing)."""
        return await self.backend.list_len(self.key(key))

    def atomic(self) -> Transaction:
        """Group writes into one atomic step: `async with client.atomic() as tx: tx.set(...)`."""
        return Transaction(self)

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.backend.close()


class Transaction:
    """Writes collected in an `async with` block and applied together on leaving it.

    Nothing is sent if the block raises. On Redis this is one MULTI/EXEC; `results` then
    holds one number per write (1 for a set, keys removed, or a list's new length).
    """

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._ops: list[WriteOp] = []
        self.results: list[int] = []

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Queue a SET."""
        c = self._client
        self._ops.append(SetOp(c.key(key), c.encode(key, value), c.ttl_of(ttl)))

    def delete(self, key: str) -> None:
        """Queue a DEL."""
        self._ops.append(DeleteOp(self._client.key(key)))

    def list_push(self, key: str, value: Any, cap: int, *, skip_if_head: bool = False) -> None:
        """Queue a capped LPUSH (see RedisClient.list_push)."""
        c = self._client
        self._ops.append(PushOp(c.key(key), c.encode(key, value), _check_cap(cap), skip_if_head))

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._ops:
            self.results = await self._client.backend.execute(self._ops)


def _check_ttl(ttl: Any, name: str, allow_none: bool) -> float:
    if ttl is None and allow_none:
        return 0.0
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0 (0: no expiry), got {ttl!r}")
    return float(ttl)


def _check_cap(cap: Any) -> int:
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"cap must be a positive integer, got {cap!r}")
    return cap
