"""Rewards that need no model: highway-env's engineered reward and the sparse TIRL reward."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from zoo import keys
from zoo.rewards.base import RewardModule


class EngineeredReward(RewardModule):
    """highway-env's own dense reward (speed, lane, collision terms as the scenario defines them).

    Example:
        >>> from zoo import make_env
        >>> env = make_env("highway-fast", reward=EngineeredReward())  # doctest: +SKIP
    """

    terms = ("engineered",)

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        reward = next_state.get(keys.ENV_REWARD)
        return {keys.REWARD: reward, "engineered": reward}


class SparseCollisionReward(RewardModule):
    """TIRL (docs/method.md#baselines): ``-1`` on the step the ego car collides, else ``0``.

    Args:
        penalty: reward on collision.
    """

    terms = ("collision",)

    def __init__(self, penalty: float = -1.0) -> None:
        super().__init__()
        self.penalty = penalty

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        collision = next_state.get(keys.CRASHED) * self.penalty
        return {keys.REWARD: collision, "collision": collision}
