"""Content-addressed cache of image embeddings, so no frame is embedded twice."""

from __future__ import annotations

from typing import Any

import torch

from zoo.cache import LRUCache


class EmbeddingCache:
    """LRU map from (model fingerprint, frame digest) to an embedding, with hit and miss counts.

    One cache can serve several reward modules: entries of different backbones, crops or adapters
    never collide because the fingerprint is part of the key.

    Args:
        max_items: entries kept (least recently used dropped first); 0 disables the cache.
    """

    def __init__(self, max_items: int = 100_000) -> None:
        self._entries: LRUCache[tuple[str, bytes], torch.Tensor] = LRUCache(max_items)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def max_items(self) -> int:
        return self._entries.max_items

    @property
    def hits(self) -> int:
        return self._entries.hits

    @property
    def misses(self) -> int:
        return self._entries.misses

    @property
    def hit_rate(self) -> float:
        return self._entries.hit_rate

    def get(self, fingerprint: str, key: bytes) -> torch.Tensor | None:
        return self._entries.get((fingerprint, key))

    def put(self, fingerprint: str, key: bytes, value: torch.Tensor) -> None:
        self._entries.put((fingerprint, key), value.detach().cpu())

    def state_dict(self) -> dict[str, Any]:
        """Entries (oldest first) and counters as tensors and plain data, for a training checkpoint:
        ``max_items`` embeddings of ``D`` floats take ``max_items * (4 * D + 16)`` bytes at most."""
        entries = self._entries.items()
        return {"fingerprints": [fingerprint for (fingerprint, _), _ in entries],
                "digests": torch.tensor([list(digest) for (_, digest), _ in entries], dtype=torch.uint8),
                "embeddings": [embedding for _, embedding in entries],
                "hits": self.hits, "misses": self.misses}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the entries and counters with those of :meth:`state_dict` (kept within ``max_items``)."""
        self._entries.clear()
        for fingerprint, digest, embedding in zip(state["fingerprints"], state["digests"], state["embeddings"]):
            self.put(fingerprint, bytes(digest.tolist()), embedding)
        self._entries.hits, self._entries.misses = state["hits"], state["misses"]
