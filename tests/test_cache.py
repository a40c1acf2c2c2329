"""The generic LRU map behind the embedding, description and goal caches."""

from __future__ import annotations

from zoo.cache import LRUCache

MISSING = object()


def _filled(*keys: str, max_items: int = 3) -> LRUCache[str, int]:
    cache: LRUCache[str, int] = LRUCache(max_items)
    for i, key in enumerate(keys):
        cache.put(key, i)
    return cache


def test_the_least_recently_written_entry_is_dropped_first():
    cache = _filled("a", "b", "c", "d")
    assert list(cache) == ["b", "c", "d"] and len(cache) == 3
    assert "a" not in cache and cache.get("a") is None


def test_a_read_makes_the_entry_the_most_recently_used():
    cache = _filled("a", "b", "c")
    assert cache.get("a") == 0
    cache.put("d", 3)
    assert list(cache) == ["c", "a", "d"]  # "b", now the least recently used, dropped
    assert cache.items() == [("c", 2), ("a", 0), ("d", 3)]


def test_writing_a_cached_key_replaces_its_value_and_refreshes_it():
    cache = _filled("a", "b", "c")
    cache.put("a", 10)
    cache.put("d", 3)
    assert cache.items() == [("c", 2), ("a", 10), ("d", 3)]


def test_a_cached_none_is_a_hit_and_a_miss_returns_the_default():
    cache: LRUCache[str, str | None] = LRUCache(2)
    cache.put("unusable", None)
    assert "unusable" in cache and cache.get("unusable", MISSING) is None
    assert "unknown" not in cache and cache.get("unknown", MISSING) is MISSING
    assert (cache.hits, cache.misses, cache.hit_rate) == (1, 1, 0.5)


def test_membership_neither_counts_nor_refreshes():
    cache = _filled("a", "b", "c")
    assert "a" in cache and "z" not in cache
    cache.put("d", 3)
    assert list(cache) == ["b", "c", "d"] and (cache.hits, cache.misses) == (0, 0)


def test_max_items_zero_or_less_disables_the_cache():
    for max_items in (0, -1):
        cache = _filled("a", "b", max_items=max_items)
        assert len(cache) == 0 and cache.get("a", MISSING) is MISSING and cache.misses == 1


def test_clear_drops_the_entries_and_keeps_the_counts():
    cache = _filled("a", "b")
    cache.get("a")
    cache.get("z")
    cache.clear()
    assert len(cache) == 0 and list(cache) == [] and (cache.hits, cache.misses) == (1, 1)
