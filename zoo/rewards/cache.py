"""Content-addressed cache of image embeddings, so no frame is embedded twice."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch


def frame_key(frame: torch.Tensor) -> bytes:
    """A digest of one uint8 frame's content (shape included)."""
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

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
