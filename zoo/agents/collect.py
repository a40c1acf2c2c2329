"""The collector of a training run: one process, or several env worker processes (TorchRL's
``MultiSyncCollector``), each with its own env seeds and its own copy of the reward module."""

from __future__ import annotations

from functools import partial
from typing import Any

from tensordict.nn import TensorDictModuleBase
from torchrl.collectors import Collector, MultiSyncCollector

from zoo.envs.config import EnvConfig
from zoo.envs.make import build_env
from zoo.rewards.base import RewardModule


def build_collector(env: EnvConfig, policy: TensorDictModuleBase, *, seed: int, frames_per_batch: int,
                    total_frames: int, workers: int = 1, step_reward: RewardModule | None = None,
                    batch_reward: RewardModule | None = None, device: Any = None,
                    **kwargs: Any) -> Collector | MultiSyncCollector:
    """A TorchRL collector over ``workers`` env processes.

    Worker ``w`` builds its envs with seeds ``seed + w * num_envs + i`` (so no two envs share a seed) and
    its own copy of ``step_reward`` (the reward module travels to the worker pickled: a backbone that
    cannot be pickled needs ``reward_batching: collector``, where ``batch_reward`` scores the gathered
    batch in this process). With several workers the policy's weights are sent to the workers before each
    batch (``update_at_each_batch``), so they act with the weights the learner has at that moment.

    Args:
        env: the training env config (``num_envs`` envs per worker).
        policy: the exploration policy.
        seed: seed of the first env of the first worker.
        frames_per_batch: env steps per collected batch, over all workers (rounded down to a multiple of
            ``workers * num_envs``, at least one step each).
        total_frames: env steps to collect in all.
        workers: env worker processes; 1 steps the envs in this process (``num_envs > 1`` still uses
            TorchRL's ``ParallelEnv`` processes).
        step_reward: reward module attached to each env (scores every step).
        batch_reward: reward module applied to each collected batch (``reward_batching: collector``).
        device: device of the policy and the collected data.
        **kwargs: passed to the TorchRL collector (``init_random_frames`` …).

    Example:
        >>> from zoo.envs import EnvConfig
        >>> collector = build_collector(EnvConfig(), policy, seed=0, frames_per_batch=64,  # doctest: +SKIP
        ...                             total_frames=1_000, workers=2)
    """
    per_step = workers * env.num_envs
    frames_per_batch = max(per_step, frames_per_batch - frames_per_batch % per_step)
    common = dict(frames_per_batch=frames_per_batch, total_frames=total_frames, postproc=batch_reward,
                  auto_register_policy_transforms=False,  # feed-forward policies need no InitTracker
                  **kwargs)
    if workers == 1:
        return Collector(build_env(env, seed=seed, reward=step_reward), policy, device=device, **common)
    make_envs = [partial(build_env, env, seed=seed + w * env.num_envs,
                         reward=step_reward.copy_for_env() if step_reward is not None else None)
                 for w in range(workers)]
    return MultiSyncCollector(make_envs, policy, device=device, update_at_each_batch=True, **common)
