"""Propose the [θ_min, θ_max] window of a semantic reward from frames recorded in a scenario.

The window depends on the backbone (PAPER.md §1: VLM-RL's [−0.03, 0] is for ViT-bigG), so it is
measured: drive a scenario with random actions (collisions are frequent), score every frame with the
raw semantic reward, and take percentiles.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo import keys


def calibrate(reward: Any, scenario: str = "highway-fast", frames: int = 500, seed: int = 0,
              percentiles: tuple[float, float] = (5.0, 95.0), bev_size: int = 96, bev_range_m: float = 60.0,
              progress: bool = True) -> dict[str, Any]:
    """Score ``frames`` frames of ``scenario`` with ``reward`` and propose ``theta_min``/``theta_max``.

    Args:
        reward: a semantic reward module (e.g. :class:`~zoo.rewards.CLGReward`); its raw ``reward`` is used.
        scenario: scenario to record in.
        frames: number of frames.
        seed: seed of the recording.
        percentiles: (low, high) percentiles that become (θ_min, θ_max).
        bev_size: BEV frame size, as in training.
        bev_range_m: BEV range, as in training.
        progress: show a progress bar.

    Returns:
        ``theta_min``, ``theta_max``, summary statistics of the scores, and the mean score of frames
        at a collision vs. the rest (a first check that the backbone sees danger).
    """
    from rich.progress import Progress

    from zoo.envs.make import make_env
    from zoo.rewards.baselines import EngineeredReward

    low, high = percentiles
    if not 0 <= low < high <= 100:
        from zoo.registry import ZooError

        raise ZooError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    # the env renders what the reward reads: frames, frame windows and objects (a dynamic pathway)
    env = make_env(scenario, obs="bev", bev_size=bev_size, bev_range_m=bev_range_m, seed=seed,
                   frame_window=getattr(reward, "frame_window", 1), objects=getattr(reward, "needs_objects", False),
                   reward=EngineeredReward())
    recorded = []
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"recording {scenario}", total=frames)
            while sum(len(r) for r in recorded) < frames:
                recorded.append(env.rollout(frames, break_when_any_done=True).get("next"))
                bar.update(task, completed=min(frames, sum(len(r) for r in recorded)))
    finally:
        env.close()
    states = torch.cat(recorded)[:frames]
    crash = states.get(keys.CRASHED).reshape(-1) > 0.5
    scores = reward.compute(states)[keys.REWARD].reshape(-1)
    q = torch.quantile(scores, torch.tensor([low / 100, high / 100]))
    return {
        "scenario": scenario,
        "frames": int(len(scores)),
        "percentiles": [low, high],
        "theta_min": float(q[0]),
        "theta_max": float(q[1]),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "min": float(scores.min()),
        "max": float(scores.max()),
        "collision_frames": int(crash.sum()),
        "mean_at_collision": float(scores[crash].mean()) if crash.any() else None,
        "mean_elsewhere": float(scores[~crash].mean()) if (~crash).any() else None,
    }
