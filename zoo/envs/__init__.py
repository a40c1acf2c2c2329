"""highway-env scenarios as TorchRL environments.

The configs and presets load at once; the envs (``DrivingEnv``, ``build_env``, ``make_env``: highway-env, torch and
TorchRL, seconds to import) when first used, so code that only reads a config (a grid's cell task on a Ray worker,
``zoo envs list``) does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium

from zoo import _noise
from zoo.envs.config import EnvConfig, RenderNeeds
from zoo.envs.presets import SCENARIOS, ScenarioPreset

_LAZY = {"DrivingEnv": "zoo.envs.driving", "build_env": "zoo.envs.make", "make_env": "zoo.envs.make"}

#: the presets' own highway-env variants, registered with gymnasium on import (worker processes import zoo.envs too):
#: merge-v0 with traffic drawn per episode, intersection-v0 with the ego car's approach speed as a config key
ZOO_ENVS = {"zoo-merge-v0": "zoo.envs.merge:MergeTrafficEnv",
            "zoo-intersection-v0": "zoo.envs.intersection:ZooIntersectionEnv"}
for _id, _entry_point in ZOO_ENVS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry_point)

# again now: importing gymnasium put its own "once" filter for DeprecationWarning in front of the zoo's
_noise.silence_known_noise()

__all__ = ["DrivingEnv", "EnvConfig", "RenderNeeds", "ScenarioPreset", "SCENARIOS", "build_env", "make_env"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.envs' has no attribute {name!r}")
