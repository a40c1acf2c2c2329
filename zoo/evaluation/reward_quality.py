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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from zoo.errors import ZooError


def danger_auroc(rewards: np.ndarray, imminent: np.ndarray) -> float:
    """AUROC of ``-reward`` for the ``imminent`` frames against the others (ties count half)."""
    from scipy.stats import mannwhitneyu  # lazy: scipy is slow to import

    rewards, imminent = np.asarray(rewards, float), np.asarray(imminent, bool)
    if imminent.all() or not imminent.any():
        return float("nan")
    safe, danger = rewards[~imminent], rewards[imminent]
    return float(mannwhitneyu(safe, danger).statistic / (len(safe) * len(danger)))


def danger_scores(rewards: np.ndarray, within: np.ndarray, crashed: np.ndarray, ttc: np.ndarray) -> dict[str, float]:
    """``auroc_collision_1s`` (crash frames excluded) and ``spearman_ttc`` of ``rewards`` (module doc), from arrays
    of one value per frame: the reward, a collision within the horizon, crashed, the time to collision."""
    from scipy.stats import spearmanr  # lazy: scipy is slow to import

    keep = ~np.asarray(crashed, bool)
    rewards = np.asarray(rewards, float)
    return {"auroc_collision_1s": danger_auroc(rewards[keep], np.asarray(within, bool)[keep]),
            "spearman_ttc": float(spearmanr(rewards, np.asarray(ttc, float)).statistic)}


def reward_quality(rewards: np.ndarray, rows: Any) -> dict[str, float]:
    """The card metrics for ``rewards`` of the frames in ``rows`` (a dataset split or dict of columns).

    Args:
        rewards: one reward per frame.
        rows: columns ``collision_within_horizon``, ``crashed``, ``time_to_collision``.
    """
    rewards = np.asarray(rewards, float)
    within = np.asarray(rows["collision_within_horizon"], bool)
    crashed = np.asarray(rows["crashed"], bool)
    keep = ~crashed
    ttc = np.asarray(rows["time_to_collision"], float)
    columns = rows.column_names if hasattr(rows, "column_names") else list(rows)
    gap = np.asarray(rows["gap_to_leader"], float) if "gap_to_leader" in columns else None
    quality = {
        **danger_scores(rewards, within, crashed, ttc),
        "frames": float(len(rewards)),
        "imminent_frames": float((within & keep).sum()),
        # for scale: the same measure for the simulator's own ground truth, which no frame-reading model beats
        # by much (collisions from a lane change the policy has not made yet are invisible in the frame)
        "oracle_auroc_ttc": danger_auroc(ttc[keep], within[keep]),
    }
    if gap is not None:
        quality["oracle_auroc_gap"] = danger_auroc(gap[keep], within[keep])
    return quality


def episode_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], strata: Sequence[Sequence[np.ndarray]],
                      replicates: int, seed: int = 0) -> np.ndarray:
    """``statistic`` of bootstrap resamples of whole episodes: ``[replicates, *statistic's shape]``.

    Frames of one episode are correlated (a collision labels the frames before it; the traffic changes slowly), so
    a resample draws episodes, not frames: within each stratum (a scenario) as many episodes as it has, with
    replacement, and hands ``statistic`` the frame indices of the drawn episodes. Compare several rewards on the
    same resamples to get paired differences.

    Args:
        statistic: frame indices (into the arrays it closes over) -> a numpy array.
        strata: per stratum, per episode, the indices of its frames.
        replicates: resamples.
        seed: seed of the resampling generator (the same intervals on every machine).

    Example:
        >>> rewards = np.array([0.1, 0.2, 0.3, 0.4])
        >>> draws = episode_bootstrap(lambda i: rewards[i].mean(), [[np.array([0, 1]), np.array([2, 3])]], 200)
        >>> sorted(set(np.round(draws, 2)))
        [0.15, 0.25, 0.35]
    """
    if replicates < 1 or not strata or not all(strata):
        raise ZooError(f"need replicates >= 1 and at least one episode per stratum; got {replicates} replicates, "
                       f"episodes per stratum {[len(s) for s in strata]}")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(replicates):
        drawn = [episodes[i] for episodes in strata for i in rng.integers(0, len(episodes), len(episodes))]
        draws.append(np.asarray(statistic(np.concatenate(drawn))))
    return np.stack(draws)
