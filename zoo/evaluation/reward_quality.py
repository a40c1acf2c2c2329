"""How well a reward model sees danger: AUROC for imminent collisions and rank correlation with time to collision.

The measure the zoo's reward-model cards report, computed on captioned BEV frames (``zoo data bev-captions``)
from episodes the model never trained on:

* ``auroc_collision_1s``: probability that a frame whose episode collides within the next second (the
  collision frame itself excluded) gets a lower reward than a frame with no collision ahead within that
  horizon. 0.5 is chance, 1.0 perfect.
* ``spearman_ttc``: Spearman correlation between the reward and the time to collision with the leader
  (frames with no closing leader carry the cap, 100 s). Positive means safer frames score higher.
* ``oracle_auroc_ttc`` / ``oracle_auroc_gap``: the AUROC of the simulator's true time to collision and gap
  to the leader on the same frames — what perfect knowledge of the leader would reach.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def danger_auroc(rewards: np.ndarray, imminent: np.ndarray) -> float:
    """AUROC of ``-reward`` for the ``imminent`` frames against the others (ties count half)."""
    from scipy.stats import mannwhitneyu

    rewards, imminent = np.asarray(rewards, float), np.asarray(imminent, bool)
    if imminent.all() or not imminent.any():
        return float("nan")
    safe, danger = rewards[~imminent], rewards[imminent]
    return float(mannwhitneyu(safe, danger).statistic / (len(safe) * len(danger)))


def reward_quality(rewards: np.ndarray, rows: Any) -> dict[str, float]:
    """The card metrics for ``rewards`` of the frames in ``rows`` (a dataset split or dict of columns).

    Args:
        rewards: one reward per frame.
        rows: columns ``collision_within_horizon``, ``crashed``, ``time_to_collision``.
    """
    from scipy.stats import spearmanr

    rewards = np.asarray(rewards, float)
    within = np.asarray(rows["collision_within_horizon"], bool)
    crashed = np.asarray(rows["crashed"], bool)
    keep = ~crashed
    ttc = np.asarray(rows["time_to_collision"], float)
    columns = rows.column_names if hasattr(rows, "column_names") else list(rows)
    gap = np.asarray(rows["gap_to_leader"], float) if "gap_to_leader" in columns else None
    quality = {
        "auroc_collision_1s": danger_auroc(rewards[keep], within[keep]),
        "spearman_ttc": float(spearmanr(rewards, ttc).statistic),
        "frames": float(len(rewards)),
        "imminent_frames": float((within & keep).sum()),
        # for scale: the same measure for the simulator's own ground truth, which no frame-reading model beats
        # by much (collisions from a lane change the policy has not made yet are invisible in the frame)
        "oracle_auroc_ttc": danger_auroc(ttc[keep], within[keep]),
    }
    if gap is not None:
        quality["oracle_auroc_gap"] = danger_auroc(gap[keep], within[keep])
    return quality
