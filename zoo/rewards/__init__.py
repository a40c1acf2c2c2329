"""Reward modules (common contract in :mod:`zoo.rewards.base`)."""

from zoo.rewards.base import RewardModule
from zoo.rewards.baselines import EngineeredReward, SparseCollisionReward

__all__ = ["RewardModule", "EngineeredReward", "SparseCollisionReward"]
