"""A bounded least-recently-used map, for derived card keys."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``entries_max`` entries; the least recently read or written one goes first.

    Its ``repr`` shows only the counts, never keys or values (they are card keys).

    >>> cache = LruCache(2)
    >>> cache.put("a", 1); cache.put("b", 2); cache.get("a"); cache.put("c", 3)
    1
    >>> cache.get("b") is None, len(cache)
    (True, 2)
    >>> cache
    LruCache(entries=2, entries_max=2)
    """

    def __init__(self, entries_max: int, on_evict: Callable[[V], None] | None = None) -> None:
        assert entries_max > 0
        self.entries_max = entries_max
        self._entries: OrderedDict[K, V] = OrderedDict()
        # Called with each value that leaves the cache (e.g. to destroy a token object).
        self._on_evict = on_evict

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.entries_max:
            _, evicted = self._entries.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(evicted)
        assert len(self._entries) <= self.entries_max

    def clear(self) -> None:
        while self._entries:
            _, evicted = self._entries.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(evicted)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"LruCache(entries={len(self)}, entries_max={self.entries_max})"
