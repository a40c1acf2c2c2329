"""highway-env scenarios as TorchRL environments."""

from zoo.envs.driving import DrivingEnv
from zoo.envs.make import EnvConfig, make_env
from zoo.envs.presets import SCENARIOS, ScenarioPreset

__all__ = ["DrivingEnv", "EnvConfig", "ScenarioPreset", "SCENARIOS", "make_env"]
