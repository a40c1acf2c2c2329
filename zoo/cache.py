"""A bounded least-recently-used map with hit and miss counts, shared by the zoo's caches, and the content key of a
frame they store results under."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import torch

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


class LRUCache(Generic[K, V]):
    """Map of at most ``max_items`` entries; the least recently used (read or written) is dropped first.

    :meth:`get` counts a hit or a miss; a cached ``None`` is a hit, told apart from a miss by the ``default``
    (or by ``key in cache``, which neither counts nor refreshes the entry).

    Args:
        max_items: entries kept; 0 (or less) disables the cache: :meth:`put` keeps nothing.

    Example:
        >>> cache = LRUCache[str, int](max_items=2)
        >>> cache.put("a", 1); cache.put("b", 2); cache.get("a"); cache.put("c", 3)
        1
        >>> list(cache), cache.get("b", -1), (cache.hits, cache.misses)
        (['a', 'c'], -1, (1, 1))
    """

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """Keys, least recently used first."""
        return iter(self._entries)

    def items(self) -> list[tuple[K, V]]:
        """``(key, value)`` pairs, least recently used first."""
        return list(self._entries.items())

    def get(self, key: K, default: D | None = None) -> V | D | None:
        """The value of ``key`` (now the most recently used), or ``default`` on a miss."""
        if key not in self._entries:
            self.misses += 1
            return default
        self.hits += 1
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: K, value: V) -> None:
        """Store ``value`` as the most recently used entry, dropping the least recently used beyond ``max_items``."""
        if self.max_items <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry (the hit and miss counts stay)."""
        self._entries.clear()

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def frame_key(frame: torch.Tensor) -> bytes:
    """A digest of one uint8 frame's (or frame window's) content, shape included."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(tuple(frame.shape)).encode())
    digest.update(frame.contiguous().cpu().numpy().tobytes())
    return digest.digest()
