"""Evaluation rollouts of a trained agent on held-out seeds, with an optional video."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress

from zoo import keys
from zoo.envs.make import build_env
from zoo.evaluation.metrics import episode_metrics, summarize
from zoo.evaluation.video import caption, write_video

#: evaluation seeds start here; training seeds must stay below (checked by the agents' ``seed``)
EVAL_SEED_OFFSET = 1_000_000


@dataclass
class EvaluationResult:
    """Per-episode metrics and their summary (mean, std)."""

    scenario: str
    seeds: list[int]
    episodes: list[dict[str, float]]
    summary: dict[str, tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seeds": self.seeds,
            "summary": {k: {"mean": m, "std": s} for k, (m, s) in self.summary.items()},
            "episodes": self.episodes,
        }

    def flat_metrics(self, prefix: str = "eval/") -> dict[str, float]:
        out = {}
        for name, (mean, std) in self.summary.items():
            out[f"{prefix}{name}"] = mean
            out[f"{prefix}{name}_std"] = std
        return out


def held_out_seeds(episodes: int, seed: int = 0) -> list[int]:
    """Reset seeds of the evaluation episodes: ``EVAL_SEED_OFFSET + seed + i``, disjoint from training's."""
    return [EVAL_SEED_OFFSET + seed + i for i in range(episodes)]


def evaluate(
    agent: Any,
    scenario: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    video: str | Path | None = None,
    max_steps: int = 2_000,
    progress: bool = True,
    condition: str = "default",
) -> EvaluationResult:
    """Run ``episodes`` deterministic episodes on held-out seeds and measure driving metrics.

    Episode ``i`` resets the environment with seed ``EVAL_SEED_OFFSET + seed + i``: disjoint from
    training, which seeds its environments below ``EVAL_SEED_OFFSET``.

    Args:
        agent: a trained :class:`zoo.agents.Agent`.
        scenario: scenario name; default the one the agent was trained on.
        episodes: number of episodes.
        seed: evaluation seed (offset into the held-out range).
        video: write the first episode as a GIF/MP4 at this path.
        max_steps: safety cap on steps per episode.
        progress: show a progress bar.
        condition: ``"default"`` (the traffic trained on) or ``"unseen"`` (``zoo.envs.presets.CONDITIONS``).

    Example:
        >>> result = zoo.evaluate(agent, episodes=5)  # doctest: +SKIP
        >>> result.summary["SR"]  # doctest: +SKIP
        (0.8, 0.4)
    """
    config = replace(agent.env_config, num_envs=1, scenario=scenario or agent.env_config.scenario, condition=condition)
    reward = agent.reward.copy_for_env() if agent.reward is not None else None
    env = build_env(config, reward=reward)
    agent.eval()
    with torch.no_grad():
        return run_episodes(env, lambda episode_seed: agent.act, config.scenario, held_out_seeds(episodes, seed),
                            video=video, max_steps=max_steps, progress=progress)


def run_episodes(
    env: Any,
    policy_for: Callable[[int], Callable],
    scenario: str,
    seeds: list[int],
    video: str | Path | None = None,
    max_steps: int = 2_000,
    progress: bool = True,
) -> EvaluationResult:
    """One episode per seed on ``env`` (single, in-process; closed at the end), measured by :func:`episode_metrics`.

    ``policy_for(seed)`` gives the policy of the episode reset with ``seed`` (a TensorDict -> TensorDict callable
    writing ``action``): trained agents and reference policies share this loop, so their metrics are comparable.
    """
    results, frames, captions = [], [], []
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"evaluating on {scenario}", total=len(seeds))
            for i, episode_seed in enumerate(seeds):
                record = video is not None and i == 0
                start = env.reset(seed=episode_seed)
                if record:
                    frames.append(_render(env))
                callback = (lambda e, td: frames.append(_render(e))) if record else None
                rollout = env.rollout(max_steps, policy_for(episode_seed), auto_cast_to_device=True,
                                      auto_reset=False, tensordict=start, break_when_any_done=True,
                                      callback=callback)
                if record:  # rollout() calls back before each step, not after the last one
                    frames.append(_render(env))
                    captions = _captions(start, rollout)
                results.append(episode_metrics(rollout.cpu()))
                bar.advance(task)
    finally:
        env.close()
    if video is not None:
        write_video(frames, captions, Path(video))
    return EvaluationResult(scenario, seeds, results, summarize(results))


def _render(env: Any):
    """Full-resolution RGB frame of the (single, in-process) env."""
    return env.base_env._env.unwrapped.render()


def _captions(start: Any, rollout: Any) -> list[str]:
    """One caption per video frame: the reset frame, then the frame after each step."""
    speeds = [float(start[keys.SPEED].reshape(-1)[0]), *rollout["next", keys.SPEED].reshape(-1).tolist()]
    rewards = [None, *rollout["next", keys.REWARD].reshape(-1).tolist()]
    return [caption(step, speed, reward) for step, (speed, reward) in enumerate(zip(speeds, rewards))]
