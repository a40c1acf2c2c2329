"""Does a reward model's image tower speak the risk describer's language? Retrieval of risk types on held-out frames.

The dual pathway pays ``R_dynamic = α·cos(x, l_pos_dyn) − β·cos(x, l_dyn)`` with ``l_dyn`` the describer's
description of the risk (docs/method.md#dual-pathway). That is a reward only if the image embedding ``x`` sits
closer to the description of the risk the frame shows than to the others. Measured on frames labelled with the
simulator's risk type (``dynamic_risk`` of ``zoo data bev-captions``), with the describer's own templates
(:data:`zoo.data.bev_captions.DYNAMIC_CAPTIONS`) as the texts:

* ``text_to_image_recall_at_1``: each template as a query; the share of queries whose nearest frame shows the
  query's risk type, averaged over the risk types the frames contain (chance: about each type's share of frames);
* ``image_to_text_balanced_accuracy``: each frame's nearest risk type (the mean embedding of its templates),
  recall per type averaged over the types present (chance: ``1 / types``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


@torch.no_grad()
def risk_retrieval(encoder: Any, frames: torch.Tensor, labels: Sequence[str],
                   captions: Mapping[str, Sequence[str]] | None = None, chunk: int = 256) -> dict[str, Any]:
    """Retrieval of risk types between uint8 frames ``[N, 3, H, W]`` and their templates (module doc).

    Args:
        encoder: a dual encoder (:func:`zoo.vlm.load_dual_encoder`): ``embed_images`` and ``embed_texts``.
        frames: the frames.
        labels: each frame's risk type, a key of ``captions``.
        captions: risk type -> its templates (default: the describer's, ``DYNAMIC_CAPTIONS``).
        chunk: frames embedded at a time.

    Returns:
        ``{"text_to_image_recall_at_1", "image_to_text_balanced_accuracy", "chance_balanced_accuracy",
        "frames", "per_type": {type: {"frames", "text_to_image_recall_at_1", "image_to_text_recall"}}}``
    """
    from zoo.data.bev_captions import DYNAMIC_CAPTIONS  # lazy: would load highway_env

    captions = DYNAMIC_CAPTIONS if captions is None else captions
    types = list(captions)
    labels = np.asarray(labels)
    images = torch.cat([encoder.embed_images(part) for part in frames.split(chunk)]).cpu()
    queries = {t: encoder.embed_texts(list(captions[t])).cpu() for t in types}
    centroids = torch.nn.functional.normalize(torch.stack([queries[t].mean(0) for t in types]), dim=-1)
    nearest_type = np.asarray(types)[(images @ centroids.T).argmax(-1).numpy()]
    per_type: dict[str, dict[str, Any]] = {}
    for name in types:
        mine = labels == name
        if not mine.any():
            continue
        nearest_frame = (queries[name] @ images.T).argmax(-1).numpy()
        per_type[name] = {"frames": int(mine.sum()),
                          "text_to_image_recall_at_1": float((labels[nearest_frame] == name).mean()),
                          "image_to_text_recall": float((nearest_type[mine] == name).mean())}
    return {"text_to_image_recall_at_1": float(np.mean([v["text_to_image_recall_at_1"] for v in per_type.values()])),
            "image_to_text_balanced_accuracy": float(np.mean([v["image_to_text_recall"] for v in per_type.values()])),
            "chance_balanced_accuracy": 1.0 / len(per_type), "frames": len(labels), "per_type": per_type}
