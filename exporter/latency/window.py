"""A bounded window of measurements, keyed for fast per-key queries, evicting the oldest overall."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any


class KeyedWindow:
    """Keeps the last `size` items across all keys; each key's items stay in arrival order."""

    __slots__ = ("size", "_order", "_by_key")

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"window size must be a positive integer, got {size!r}")
        self.size = size
        self._order: deque[Hashable] = deque()  # keys in arrival order, for global eviction
        self._by_key: dict[Hashable, deque[Any]] = {}

    def append(self, key: Hashable, item: Any) -> None:
        """Add one item under `key`, evicting the oldest item of the whole window when full."""
        self.extend((key,), (item,))

    def extend(self, keys: Sequence[Hashable], items: Sequence[Any]) -> None:
        """Add `items[i]` under `keys[i]` in order, exactly as `append` of each in turn
        (the same evictions, the same key order), without a call per item."""
        order, by_key, size = self._order, self._by_key, self.size
        for key, item in zip(keys, items, strict=True):
            if len(order) >= size:
                oldest = order.popleft()
                kept = by_key[oldest]
                kept.popleft()
                if not kept:
                    del by_key[oldest]
            order.append(key)
            kept = by_key.get(key)
            if kept is None:
                kept = by_key[key] = deque()
            kept.append(item)

    def items(self, key: Hashable) -> deque[Any] | tuple[()]:
        """The items of one key, oldest first (empty when the key has none)."""
        return self._by_key.get(key, ())

    def keys(self) -> list[Hashable]:
        """The keys that have items now."""
        return list(self._by_key)

    def groups(self) -> Iterator[tuple[Hashable, deque[Any]]]:
        """(key, items) for every key; a snapshot of the key list, so callers may not mutate."""
        return iter(list(self._by_key.items()))

    def remove(self, predicate: Callable[[Hashable], bool]) -> int:
        """Drop every item whose key matches; returns how many were dropped."""
        doomed = [key for key in self._by_key if predicate(key)]
        if not doomed:
            return 0
        removed = sum(len(self._by_key.pop(key)) for key in doomed)
        gone = set(doomed)
        self._order = deque(key for key in self._order if key not in gone)
        return removed

    def clear(self) -> int:
        """Drop everything; returns how many items were dropped."""
        removed = len(self._order)
        self._order.clear()
        self._by_key.clear()
        return removed

    def __len__(self) -> int:
        return len(self._order)
