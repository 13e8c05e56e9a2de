"""The in-process cache both authentication caches use (verified API keys, access tokens found not revoked)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
G = TypeVar("G", bound=Hashable)


class TtlLruCache(Generic[K, V, G]):
    """``key -> value``: least recently used first out beyond ``max_entries``, each entry valid for ``ttl_s`` on
    ``clock``, and indexed by ``group_of(value)`` (None = no group) so that evicting a group does not scan."""

    def __init__(
        self, ttl_s: float, max_entries: int, clock: Callable[[], float], group_of: Callable[[V], G | None]
    ) -> None:
        self.ttl_s, self.max_entries, self.clock, self.group_of = ttl_s, max_entries, clock, group_of
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._groups: dict[G, set[K]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= self.clock():
            self.evict(key)
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.evict(key)
        self._entries[key] = (value, self.clock() + self.ttl_s)
        group = self.group_of(value)
        if group is not None:
            self._groups.setdefault(group, set()).add(key)
        while len(self._entries) > self.max_entries:
            self.evict(next(iter(self._entries)))

    def evict(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        group = self.group_of(entry[0])
        if group is None:
            return
        keys = self._groups[group]
        keys.discard(key)
        if not keys:
            del self._groups[group]

    def evict_group(self, group: G) -> None:
        for key in self._groups.pop(group, ()):
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
        self._groups.clear()


__all__ = ["TtlLruCache"]
