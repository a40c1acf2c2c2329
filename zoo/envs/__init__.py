"""highway-env scenarios as TorchRL environments."""

import gymnasium

from zoo import _noise
from zoo.envs.config import EnvConfig, RenderNeeds
from zoo.envs.driving import DrivingEnv
from zoo.envs.make import build_env, make_env
from zoo.envs.presets import SCENARIOS, ScenarioPreset

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
