"""highway-env scenarios as TorchRL environments."""

from zoo import _noise
from zoo.envs.driving import DrivingEnv
from zoo.envs.make import EnvConfig, make_env
from zoo.envs.presets import SCENARIOS, ScenarioPreset

# again now: importing gymnasium put its own "once" filter for DeprecationWarning in front of the zoo's
_noise.silence_known_noise()

__all__ = ["DrivingEnv", "EnvConfig", "ScenarioPreset", "SCENARIOS", "make_env"]
