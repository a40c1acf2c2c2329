"""Reward modules (common contract in :mod:`zoo.rewards.base`)."""

from zoo.rewards.base import RewardModule, render_needs
from zoo.rewards.baselines import EngineeredReward, SparseCollisionReward
from zoo.rewards.dynamic import DYNAMIC_POSITIVE, DualPathwayReward
from zoo.rewards.synthesis import HierarchicalReward
from zoo.rewards.vlm import (
    CLG_NEGATIVE,
    CLG_POSITIVE,
    SAFE_DRIVING_GOAL,
    CLGReward,
    LORDReward,
    RoboCLIPReward,
    VLMReward,
    VLMRMReward,
    VLMSRReward,
)

__all__ = ["CLG_NEGATIVE", "CLG_POSITIVE", "CLGReward", "DYNAMIC_POSITIVE", "DualPathwayReward", "EngineeredReward",
           "HierarchicalReward", "LORDReward", "RewardModule", "RoboCLIPReward", "SAFE_DRIVING_GOAL",
           "SparseCollisionReward", "VLMRMReward", "VLMReward", "VLMSRReward", "render_needs"]
