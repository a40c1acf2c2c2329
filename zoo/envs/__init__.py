"""highway-env scenarios as TorchRL environments."""

import gymnasium

from zoo import _noise
from zoo.envs.driving import DrivingEnv
from zoo.envs.make import EnvConfig, make_env
from zoo.envs.presets import SCENARIOS, ScenarioPreset

# the merge preset's env: merge-v0 with traffic drawn per episode (zoo/envs/merge.py)
if "zoo-merge-v0" not in gymnasium.registry:
    gymnasium.register(id="zoo-merge-v0", entry_point="zoo.envs.merge:MergeTrafficEnv")

# again now: importing gymnasium put its own "once" filter for DeprecationWarning in front of the zoo's
_noise.silence_known_noise()

__all__ = ["DrivingEnv", "EnvConfig", "ScenarioPreset", "SCENARIOS", "make_env"]
