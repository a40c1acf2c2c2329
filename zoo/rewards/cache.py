"""Content-addressed cache of image embeddings, so no frame is embedded twice."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import torch


def frame_key(frame: torch.Tensor) -> bytes:
    """A digest of one uint8 frame's (or frame window's) content, shape included."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(tuple(frame.shape)).encode())
    digest.update(frame.contiguous().cpu().numpy().tobytes())
    return digest.digest()


class EmbeddingCache:
    """LRU map from (model fingerprint, frame digest) to an embedding, with hit and miss counts.

    One cache can serve several reward modules: entries of different backbones, crops or adapters
    never collide because the fingerprint is part of the key.

    Args:
        max_items: entries kept (least recently used dropped first); 0 disables the cache.
    """

    def __init__(self, max_items: int = 100_000) -> None:
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._store: OrderedDict[tuple[str, bytes], torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, fingerprint: str, key: bytes) -> torch.Tensor | None:
        item = self._store.get((fingerprint, key))
        if item is None:
            self.misses += 1
            return None
        self._store.move_to_end((fingerprint, key))
        self.hits += 1
        return item

    def put(self, fingerprint: str, key: bytes, value: torch.Tensor) -> None:
        if self.max_items <= 0:
            return
        self._store[(fingerprint, key)] = value.detach().cpu()
        self._store.move_to_end((fingerprint, key))
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)

    def state_dict(self) -> dict[str, Any]:
        """Entries (oldest first) and counters as tensors and plain data, for a training checkpoint:
        ``max_items`` embeddings of ``D`` floats take ``max_items * (4 * D + 16)`` bytes at most."""
        entries = list(self._store.items())
        return {"fingerprints": [fingerprint for (fingerprint, _), _ in entries],
                "digests": torch.tensor([list(digest) for (_, digest), _ in entries], dtype=torch.uint8),
                "embeddings": [embedding for _, embedding in entries],
                "hits": self.hits, "misses": self.misses}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the entries and counters with those of :meth:`state_dict` (kept within ``max_items``)."""
        self._store.clear()
        for fingerprint, digest, embedding in zip(state["fingerprints"], state["digests"], state["embeddings"]):
            self.put(fingerprint, bytes(digest.tolist()), embedding)
        self.hits, self.misses = state["hits"], state["misses"]

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
