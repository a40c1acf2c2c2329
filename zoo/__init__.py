"""The zoo: reinforcement learning with vision-language-model rewards for autonomous driving.

Public API (imports are lazy so ``import zoo`` stays fast)::

    import zoo
    env = zoo.make_env("highway-fast", obs="both")
    zoo.list_scenarios()
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo import _noise

__version__ = "0.1.0"

_LAZY = {
    "make_env": "zoo.envs.make",
    "EnvConfig": "zoo.envs.make",
    "ZooError": "zoo.errors",
    "list_scenarios": "zoo.api",
    "list_agents": "zoo.api",
    "load_agent": "zoo.agents.checkpoint",
    "evaluate": "zoo.evaluation.rollout",
    "evaluate_reference": "zoo.evaluation.reference",
    "reference_policy": "zoo.evaluation.reference",
    "create_reward_model": "zoo.rewards.factory",
    "list_models": "zoo.hub.resolve",
    "load_policy": "zoo.api",
}

__all__ = sorted(_LAZY)

_noise.silence_known_noise()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
