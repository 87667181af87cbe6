"""The embedded backend: an in-process store with Redis' semantics for what we use.

Expiring entries are capped at `max_entries` with FIFO eviction (the oldest write goes
first); persistent entries (ttl 0, the trading state) are never evicted. Expired entries
disappear on access and in a sweep that runs at most every `cleanup_interval` seconds,
piggybacked on operations, plus whatever periodic `sweep()` the owner schedules. The
backend keeps its own account of the bytes it holds (keys and values, by cache label):
a deleted, expired, evicted or trimmed value leaves it, and nothing else refers to it.
With `max_bytes`, a write batch that would take the account beyond it raises CacheFull
and writes nothing (writes that shrink it always pass).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .backend import DeleteOp, RawValue, SetOp, WriteOp, check_types
from .errors import CacheFull, CacheTypeError


@dataclass
class _Entry:
    value: bytes | list[bytes]  # a list is stored newest first, as LPUSH leaves it
    expires: float | None  # clock value; None: never


def _size(key: str, value: bytes | list[bytes]) -> int:
    """What an entry holds: its key's length and its value's bytes (a list's elements)."""
    if isinstance(value, bytes):
        return len(key) + len(value)
    return len(key) + sum(len(item) for item in value)


def lrange(items: Sequence[bytes], start: int, stop: int) -> list[bytes]:
    """Redis LRANGE on a Python sequence: inclusive stop, negative indexes from the end."""
    n = len(items)
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = n + stop
    if start >= n or start > stop:
        return []
    return list(items[start : min(stop, n - 1) + 1])


class MemoryBackend:
    """In-memory storage with TTLs, a FIFO cap on expiring entries and periodic cleanup."""

    kind = "memory"

    def __init__(
        self,
        max_entries: int = 1000,
        *,
        clock: Callable[[], float] = time.monotonic,
        cleanup_interval: float = 60.0,
        on_evict: Callable[[str, str], None] | None = None,
        classify: Callable[[str], str] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries!r}")
        self.up: bool | None = None
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.cleanup_interval = cleanup_interval
        self._clock = clock
        self._on_evict = on_evict
        self._classify = classify or (lambda key: "generic")
        self._data: dict[str, _Entry] = {}
        self._fifo: OrderedDict[str, None] = OrderedDict()  # expiring keys, oldest write first
        self._counts: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()  # bytes of keys and values, by cache label
        self._last_sweep = clock()

    # -- bookkeeping -------------------------------------------------------------------

    def entries(self, label: str | None = None) -> int:
        """How many entries are held (under one cache label, or all)."""
        return len(self._data) if label is None else self._counts[label]

    def bytes_held(self, label: str | None = None) -> int:
        """Bytes of the keys and values held (under one cache label, or all)."""
        return sum(self._bytes.values()) if label is None else self._bytes[label]

    def sweep(self) -> int:
        """Remove every expired entry now; returns how many went."""
        now = self._clock()
        self._last_sweep = now
        expired = [k for k, e in self._data.items() if e.expires is not None and e.expires <= now]
        for key in expired:
            self._remove(key, "ttl")
        return len(expired)

    def _maybe_sweep(self) -> None:
        if self._clock() - self._last_sweep >= self.cleanup_interval:
            self.sweep()

    def _remove(self, key: str, reason: str | None = None) -> None:
        entry = self._data.pop(key)
        self._fifo.pop(key, None)
        label = self._classify(key)
        self._counts[label] -= 1
        self._bytes[label] -= _size(key, entry.value)
        if reason is not None and self._on_evict is not None:
            self._on_evict(key, reason)

    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= self._clock():
            self._remove(key, "ttl")
            return None
        return entry

    def _store(self, key: str, entry: _Entry) -> None:
        if key in self._data:
            self._remove(key)
        if entry.expires is not None:
            if len(self._fifo) >= self.max_entries:
                self.sweep()
            while len(self._fifo) >= self.max_entries:
                oldest = next(iter(self._fifo))
                self._remove(oldest, "capacity")
            self._fifo[key] = None
        self._data[key] = entry
        label = self._classify(key)
        self._counts[label] += 1
        self._bytes[label] += _size(key, entry.value)

    def _string(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        if isinstance(entry.value, list):
            raise CacheTypeError(f"{key} holds a list, not a string")
        return entry.value

    def _list(self, key: str) -> list[bytes] | None:
        entry = self._live(key)
        if entry is None:
            return None
        if not isinstance(entry.value, list):
            raise CacheTypeError(f"{key} holds a string, not a list")
        return entry.value

    # -- the Backend interface -----------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The string at `key`, or None."""
        self._maybe_sweep()
        return self._string(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Strings at several keys (None for missing keys and lists, as MGET)."""
        self._maybe_sweep()
        out: list[bytes | None] = []
        for key in keys:
            entry = self._live(key)
            out.append(entry.value if entry is not None and isinstance(entry.value, bytes) else None)
        return out

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store a string; ttl 0 means no expiry."""
        await self.execute([SetOp(key, value, ttl)])

    async def delete(self, keys: Sequence[str]) -> int:
        """Delete keys; how many existed."""
        self._maybe_sweep()
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                self._remove(key)
                removed += 1
        return removed

    async def exists(self, key: str) -> bool:
        """Whether `key` exists and has not expired."""
        self._maybe_sweep()
        return self._live(key) is not None

    async def scan(self, pattern: str, limit: int | None = None) -> list[str]:
        """Live keys matching a glob pattern, at most `limit`."""
        self._maybe_sweep()
        now = self._clock()
        found = []
        for key, entry in self._data.items():
            if entry.expires is not None and entry.expires <= now:
                continue
            if fnmatchcase(key, pattern):
                found.append(key)
                if limit is not None and len(found) >= limit:
                    break
        return found

    async def list_range(self, key: str, start: int, stop: int) -> list[bytes]:
        """LRANGE semantics."""
        self._maybe_sweep()
        items = self._list(key)
        return [] if items is None else lrange(items, start, stop)

    async def list_len(self, key: str) -> int:
        """Length of the list at `key`."""
        items = self._list(key)
        return 0 if items is None else len(items)

    async def execute(self, ops: Sequence[WriteOp]) -> list[int]:
        """Apply writes atomically: every type is checked before the first write."""
        self._maybe_sweep()
        kinds: dict[str, str] = {}
        for op in ops:  # the type each key holds now
            if op.key not in kinds:
                entry = self._live(op.key)
                kinds[op.key] = "none" if entry is None else (
                    "list" if isinstance(entry.value, list) else "string")
        check_types(ops, kinds)
        if self.max_bytes is not None:
            growth = sum(self._growth(op) for op in ops)
            held = self.bytes_held()
            if growth > 0 and held + growth > self.max_bytes:
                raise CacheFull(f"the in-memory cache holds {held} bytes; this write needs {growth} "
                                f"more, beyond its budget of {self.max_bytes} (CACHE_MAX_BYTES)")
        now = self._clock()
        results: list[int] = []
        for op in ops:
            if isinstance(op, SetOp):
                self._store(op.key, _Entry(op.value, now + op.ttl if op.ttl > 0 else None))
                results.append(1)
            elif isinstance(op, DeleteOp):
                existed = self._live(op.key) is not None
                if existed:
                    self._remove(op.key)
                results.append(int(existed))
            else:
                items = self._list(op.key)
                if items is None:
                    items = []
                    self._store(op.key, _Entry(items, None))
                if not (op.skip_if_head and items and items[0] == op.value):
                    items.insert(0, op.value)
                    grown = len(op.value) - sum(len(item) for item in items[op.cap :])
                    del items[op.cap :]
                    self._bytes[self._classify(op.key)] += grown
                results.append(len(items))
        return results

    def _growth(self, op: WriteOp) -> int:
        """How many bytes `op` would add to the account (negative: free), against the
        entries as they are now."""
        entry = self._live(op.key)
        held = 0 if entry is None else _size(op.key, entry.value)
        if isinstance(op, SetOp):
            return _size(op.key, op.value) - held
        if isinstance(op, DeleteOp):
            return -held
        items = entry.value if entry is not None and isinstance(entry.value, list) else []
        if op.skip_if_head and items and items[0] == op.value:
            return 0
        trimmed = sum(len(item) for item in items[max(op.cap - 1, 0):])
        return len(op.value) - trimmed + (len(op.key) if entry is None else 0)

    async def compare_and_delete(self, key: str, expected: bytes) -> bool:
        """Delete `key` only if it still holds exactly `expected`."""
        entry = self._live(key)
        if entry is None or entry.value != expected:
            return False
        self._remove(key)
        return True

    async def read_many(self, keys: Sequence[str], max_bytes: int,
                        lists: Collection[str] = ()) -> list[RawValue]:
        """Bounded reads of several keys (atomic: nothing runs in between)."""
        self._maybe_sweep()
        out: list[RawValue] = []
        for key in keys:
            entry = self._live(key)
            if entry is None:
                out.append(RawValue("missing"))
            elif isinstance(entry.value, list):
                if key in lists:
                    out.append(RawValue("list", entry.value[0], len(entry.value)))
                else:
                    out.append(RawValue("list"))
            else:
                size = len(entry.value)
                out.append(RawValue("string", entry.value[: max_bytes + 1], size, size > max_bytes))
        return out

    def mark_down(self, reason: str) -> None:
        """Memory is never down."""

    async def close(self) -> None:
        """Nothing to release."""
