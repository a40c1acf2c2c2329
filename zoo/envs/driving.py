"""A highway-env scenario as a gymnasium env with the zoo's observation layout.

The observation is a dict (which TorchRL's ``GymWrapper`` turns into TensorDict keys, names from
:mod:`zoo.keys`): the scenario's vector observation, optionally the BEV frame rendered by highway-env
itself, the ego vehicle state and highway-env's engineered reward (kept so that replay-buffer data can
be relabelled with any reward later).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from zoo import keys
from zoo.envs.presets import ScenarioPreset
from zoo.registry import ZooError

OBS_MODES = ("kinematics", "bev", "both")
ACTION_MODES = ("continuous", "discrete")


def _wrap_to_pi(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _scalar_box(low: float = -np.inf, high: float = np.inf) -> spaces.Box:
    return spaces.Box(low, high, (1,), np.float32)


class DrivingEnv(gym.Wrapper):
    """Wrap a highway-env env: dict observations, (steer, throttle) actions, vehicle state.

    Args:
        preset: the scenario.
        obs: ``"kinematics"`` (vector observation only), ``"bev"`` (BEV frame only) or ``"both"``.
        action: ``"continuous"`` (steer, throttle in [-1, 1]; steer only on lateral-only scenarios)
            or ``"discrete"`` (highway-env's meta-actions).
        bev_size: side of the square BEV frame in pixels.
        bev_range_m: metres of road across the BEV frame.
        frame_window: BEV frames in ``pixels_window`` (the current one and those before it; the first frame
            repeated at an episode's start); 1 writes no window.
        stability_window_s: seconds of lateral offsets behind ``lateral_offset_std``.
        config: extra highway-env config overrides.
    """

    def __init__(
        self,
        preset: ScenarioPreset,
        *,
        obs: str = "kinematics",
        action: str = "discrete",
        bev_size: int = 96,
        bev_range_m: float = 60.0,
        frame_window: int = 1,
        stability_window_s: float = 2.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        # SDL prints an error for every new process when this is unset; rendering works either way.
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
        if os.environ.get("SDL_VIDEODRIVER") == "dummy" and obs in ("bev", "both"):
            # highway-env switches its viewer off under the dummy driver: every frame would be black.
            warnings.warn("SDL_VIDEODRIVER=dummy makes highway-env render black frames; using 'offscreen'",
                          stacklevel=2)
            os.environ["SDL_VIDEODRIVER"] = "offscreen"
        import highway_env  # noqa: F401  (registers the gymnasium ids)

        self.preset = preset
        if frame_window < 1:
            raise ZooError(f"frame_window must be >= 1, got {frame_window}")
        if frame_window > 1 and obs == "kinematics":
            raise ZooError("frame_window > 1 needs BEV frames: set obs to 'bev' or 'both'")
        self.render_bev = obs in ("bev", "both")
        self.frame_window = frame_window
        self._frames: deque[np.ndarray] = deque(maxlen=frame_window)
        self.expose_vector = obs in ("kinematics", "both")
        env_config = {
            **preset.config,
            "action": self._action_config(preset, action),
            "screen_width": bev_size,
            "screen_height": bev_size,
            "scaling": bev_size / bev_range_m,
            **(config or {}),
        }
        super().__init__(gym.make(preset.gym_id, config=env_config, render_mode="rgb_array"))
        self.continuous = action == "continuous"
        self.bev_size = bev_size
        self._distance = 0.0
        window = max(2, round(stability_window_s * self.unwrapped.config["policy_frequency"]))
        self._lateral_offsets: deque[float] = deque(maxlen=window)

        observation: dict[str, spaces.Space] = {}
        if self.expose_vector:
            size = int(np.prod(self.env.observation_space.shape))
            observation[keys.OBSERVATION] = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        if self.render_bev:
            observation[keys.PIXELS] = spaces.Box(0, 255, (3, bev_size, bev_size), np.uint8)
        if frame_window > 1:
            observation[keys.PIXELS_WINDOW] = spaces.Box(0, 255, (frame_window, 3, bev_size, bev_size), np.uint8)
        observation[keys.VEHICLE_STATE] = spaces.Dict({name: _scalar_box() for name in keys.VEHICLE_STATE_FIELDS})
        observation[keys.ENV_REWARD] = _scalar_box()
        self.observation_space = spaces.Dict(observation)
        if self.continuous:
            dims = 1 if preset.lateral_only else 2
            self.action_space = spaces.Box(-1.0, 1.0, (dims,), np.float32)

    @staticmethod
    def _action_config(preset: ScenarioPreset, action: str) -> dict[str, Any]:
        if action == "discrete":
            return {"type": "DiscreteMetaAction", **({"lateral": True} if preset.lateral_only else {})}
        return {"type": "ContinuousAction", "longitudinal": not preset.lateral_only, "lateral": True}

    # -- gym API ----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._distance = 0.0
        self._lateral_offsets.clear()
        self._frames.clear()
        return self._observation(obs, env_reward=0.0), info

    def step(self, action):
        if self.continuous:
            # zoo order is (steer, throttle); highway-env's ContinuousAction is (acceleration, steering).
            action = np.asarray(action, dtype=np.float32)[::-1].copy()
        position = self.unwrapped.vehicle.position.copy()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._distance += float(np.linalg.norm(self.unwrapped.vehicle.position - position))
        return self._observation(obs, env_reward=float(reward)), float(reward), terminated, truncated, info

    # -- observation ------------------------------------------------------------------------------
    def _observation(self, obs: np.ndarray, env_reward: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.expose_vector:
            out[keys.OBSERVATION] = np.asarray(obs, dtype=np.float32).reshape(-1)
        if self.render_bev:
            out[keys.PIXELS] = self.bev_frame()
        if self.frame_window > 1:
            self._frames.append(out[keys.PIXELS])
            while len(self._frames) < self.frame_window:  # an episode's start: repeat its first frame
                self._frames.appendleft(self._frames[0])
            out[keys.PIXELS_WINDOW] = np.stack(self._frames)
        state = self.vehicle_state()
        self._lateral_offsets.append(state["lateral_offset"])
        state["lateral_offset_std"] = float(np.std(self._lateral_offsets))
        out[keys.VEHICLE_STATE] = {name: np.array([state[name]], dtype=np.float32) for name in keys.VEHICLE_STATE_FIELDS}
        out[keys.ENV_REWARD] = np.array([env_reward], dtype=np.float32)
        return out

    def bev_frame(self) -> np.ndarray:
        """The BEV frame as highway-env renders it, uint8 C x H x W."""
        frame = self.env.render()
        # render() also makes highway-env draw every intermediate simulation step of the next action (frames
        # for its video recorder): 14 wasted renders per step at 15 Hz. The zoo only needs decision frames.
        self.unwrapped.enable_auto_render = False
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def vehicle_state(self) -> dict[str, float]:
        """Ego vehicle state read from the simulator (units in :mod:`zoo.keys`)."""
        vehicle = self.unwrapped.vehicle
        lane = self.unwrapped.road.network.get_lane(vehicle.lane_index)
        longitudinal, lateral = lane.local_coordinates(vehicle.position)
        return {
            "speed": float(vehicle.speed),
            "lateral_offset": float(lateral),
            "heading_error": float(_wrap_to_pi(vehicle.heading - lane.heading_at(longitudinal))),
            "on_road": float(vehicle.on_road),
            "crashed": float(vehicle.crashed),
            "distance": self._distance,
            "route_progress": self._distance / self.preset.route_length_m,
        }
