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
import highway_env  # noqa: F401  (registers the gymnasium ids)
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from highway_env.envs.common.action import DiscreteMetaAction

from zoo import keys
from zoo.envs.config import DEFAULT_ACTION, EnvConfig
from zoo.envs.observation import use_fast_kinematics
from zoo.envs.presets import SCENARIOS, ScenarioPreset

#: classes of the road users written under ``keys.OBJECTS``, told apart by what the BEV frame shows:
#: ``crashed_car`` is a vehicle that has collided (highway-env draws it red), ``car`` any other vehicle.
#: highway-env's vehicles all share one size, so there is no truck class; a stopped car looks like a
#: moving one in a single frame, so speed makes no class either.
OBJECT_CLASSES = ("car", "crashed_car")
#: columns of a ``keys.OBJECTS`` row: the box in BEV pixels (x right, y down), the class index, 1.0 for a real row
OBJECT_FIELDS = ("x1", "y1", "x2", "y2", "class_index", "valid")
#: tyre length highway-env's VehicleGraphics leaves room for in front of and behind a vehicle's body (m)
_TYRE_LENGTH_M = 1.0
#: rows of ``keys.OBJECTS``: the nearest road users in the frame first; padding rows have ``valid = 0``
MAX_OBJECTS = 16


def _wrap_to_pi(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _scenario_defaults(preset: ScenarioPreset) -> dict[str, Any]:
    """highway-env's own default config of the preset's environment class."""
    return load_env_creator(gym.spec(preset.gym_id).entry_point).default_config()


def meta_action_config(preset: ScenarioPreset) -> dict[str, Any]:
    """The scenario's own meta-action settings: which meta-actions and which target speeds.

    highway-env gives the roundabout target speeds of 0/8/16 m/s and the intersection 0/4.5/9 m/s with
    longitudinal actions only; replacing the action config with a bare ``DiscreteMetaAction`` would give them the
    highway's 20/25/30 m/s (no car can stop at the intersection) and lane changes into oncoming traffic.
    """
    own = _scenario_defaults(preset)["action"]
    return dict(own) if own["type"] == "DiscreteMetaAction" else {"type": "DiscreteMetaAction"}


def meta_action_names(preset: ScenarioPreset) -> tuple[str, ...]:
    """Names of the scenario's meta-actions, in the order of their action indices."""
    config = meta_action_config(preset)
    longitudinal, lateral = config.get("longitudinal", True), config.get("lateral", True)
    actions = (DiscreteMetaAction.ACTIONS_ALL if longitudinal and lateral
               else DiscreteMetaAction.ACTIONS_LONGI if longitudinal else DiscreteMetaAction.ACTIONS_LAT)
    return tuple(actions[i] for i in sorted(actions))


def _scalar_box(low: float = -np.inf, high: float = np.inf) -> spaces.Box:
    return spaces.Box(low, high, (1,), np.float32)


class DrivingEnv(gym.Wrapper):
    """Wrap a highway-env env: dict observations, (steer, throttle) actions, vehicle state.

    Args:
        env: the environment (:class:`~zoo.envs.config.EnvConfig`; ``num_envs`` is not this class's: it is one env).
            ``obs`` ``"kinematics"`` gives the vector observation only, ``"bev"`` the BEV frame only, ``"both"`` both;
            ``action`` ``"continuous"`` is (steer, throttle) in [-1, 1] (steer only on lateral-only scenarios),
            ``"discrete"`` highway-env's meta-actions; a ``frame_window`` above 1 writes ``pixels_window`` (the
            current frame and those before it, the first frame repeated at an episode's start); ``objects`` writes
            ``keys.OBJECTS``, the boxes of the other road users in the BEV frame; ``condition`` ``"unseen"``
            applies the preset's ``unseen_config`` traffic.
        stability_window_s: seconds of lateral offsets behind ``lateral_offset_std``.

    Example:
        >>> env = DrivingEnv(EnvConfig("highway-fast", action="continuous"))  # doctest: +SKIP
    """

    def __init__(self, env: EnvConfig, *, stability_window_s: float = 2.0) -> None:
        # SDL prints an error for every new process when this is unset; rendering works either way.
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
        if os.environ.get("SDL_VIDEODRIVER") == "dummy" and env.renders_bev:
            # highway-env switches its viewer off under the dummy driver: every frame would be black.
            warnings.warn("SDL_VIDEODRIVER=dummy makes highway-env render black frames; using 'offscreen'",
                          stacklevel=2)
            os.environ["SDL_VIDEODRIVER"] = "offscreen"

        preset = SCENARIOS.get(env.scenario)
        action = env.action or DEFAULT_ACTION
        self.preset = preset
        self.render_bev = env.renders_bev
        self.frame_window = env.frame_window
        self._frames: deque[np.ndarray] = deque(maxlen=env.frame_window)
        self.write_objects = env.objects
        self.expose_vector = env.obs in ("kinematics", "both")
        env_config = {
            **preset.config,
            **({"duration": preset.time_limit_s} if preset.time_limit_s else {}),
            **preset.condition_config(env.condition),
            **({"policy_frequency": preset.continuous_frequency_hz}
               if action == "continuous" and preset.continuous_frequency_hz else {}),
            "action": self._action_config(preset, action),
            "screen_width": env.bev_size,
            "screen_height": env.bev_size,
            "scaling": env.bev_size / env.bev_range_m,
            **env.config,
        }
        super().__init__(gym.make(preset.gym_id, config=env_config, render_mode="rgb_array"))
        use_fast_kinematics(self.unwrapped)  # the same observation without pandas (zoo/envs/observation.py)
        self.continuous = action == "continuous"
        self.bev_size = env.bev_size
        self._distance = 0.0
        window = max(2, round(stability_window_s * self.unwrapped.config["policy_frequency"]))
        self._lateral_offsets: deque[float] = deque(maxlen=window)

        observation: dict[str, spaces.Space] = {}
        if self.expose_vector:
            size = int(np.prod(self.env.observation_space.shape))
            observation[keys.OBSERVATION] = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        if self.render_bev:
            observation[keys.PIXELS] = spaces.Box(0, 255, (3, self.bev_size, self.bev_size), np.uint8)
        if self.frame_window > 1:
            observation[keys.PIXELS_WINDOW] = spaces.Box(0, 255, (self.frame_window, 3, self.bev_size, self.bev_size),
                                                         np.uint8)
        if self.write_objects:
            observation[keys.OBJECTS] = spaces.Box(-np.inf, np.inf, (MAX_OBJECTS, len(OBJECT_FIELDS)), np.float32)
        observation[keys.VEHICLE_STATE] = spaces.Dict({name: _scalar_box() for name in keys.VEHICLE_STATE_FIELDS})
        observation[keys.ENV_REWARD] = _scalar_box()
        self.observation_space = spaces.Dict(observation)
        if self.continuous:
            dims = 1 if preset.lateral_only else 2
            self.action_space = spaces.Box(-1.0, 1.0, (dims,), np.float32)

    @staticmethod
    def _action_config(preset: ScenarioPreset, action: str) -> dict[str, Any]:
        if action == "discrete":
            return meta_action_config(preset)
        limit = preset.steering_limit_rad
        # Forward driving only, as with the papers' CARLA throttle/brake: highway-env's default lets braking
        # go on into reverse (-40 m/s), and a learner can then collect a speed reward by backing away.
        return {"type": "ContinuousAction", "longitudinal": not preset.lateral_only, "lateral": True,
                "speed_range": [0.0, 40.0], **({"steering_range": [-limit, limit]} if limit else {})}

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
        # merge-v0 has no time limit of its own; the preset's (highway-env's ``duration``) holds on every scenario
        truncated = truncated or self._time_is_up()
        self._distance += float(np.linalg.norm(self.unwrapped.vehicle.position - position))
        return self._observation(obs, env_reward=float(reward)), float(reward), terminated, truncated, info

    def _time_is_up(self) -> bool:
        unwrapped = self.unwrapped
        return "duration" in unwrapped.config and unwrapped.time >= unwrapped.config["duration"]

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
        if self.write_objects:
            out[keys.OBJECTS] = self.objects()
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

    def objects(self) -> np.ndarray:
        """Boxes of the other road users in the last BEV frame, float32 ``[MAX_OBJECTS, 6]`` (:data:`OBJECT_FIELDS`).

        Each box bounds the vehicle's body where highway-env drew it: its ``VehicleGraphics`` draws the
        ``LENGTH`` x ``WIDTH`` body (in whole pixels, ``WorldSurface.pix``) inside a square of ``LENGTH + 2`` m
        (room for the tyres), turns the square by the heading and blits it centred on ``vec2pix(position)``,
        the world to pixel transform of the viewer that drew the frame, at whole pixels. Boxes are clipped to
        the frame; vehicles wholly outside it are left out; the nearest come first.
        """
        unwrapped = self.unwrapped
        surface = unwrapped.viewer.sim_surface  # placed on the ego car by the render of this frame
        ego = unwrapped.vehicle
        rows = []
        others = sorted((v for v in unwrapped.road.vehicles if v is not ego),
                        key=lambda v: float(np.linalg.norm(v.position - ego.position)))
        for vehicle in others:
            square = surface.pix(vehicle.LENGTH + 2 * _TYRE_LENGTH_M)
            length, width = surface.pix(vehicle.LENGTH), surface.pix(vehicle.WIDTH)
            # the body's centre relative to the square's, and the whole-pixel blit of a square of odd side
            dx = surface.pix(_TYRE_LENGTH_M) + length / 2 - square / 2
            dy = surface.pix(vehicle.LENGTH / 2 + _TYRE_LENGTH_M - vehicle.WIDTH / 2) + width / 2 - square / 2
            blit = -0.5 * (square % 2)
            heading = vehicle.heading if abs(vehicle.heading) > np.deg2rad(2) else 0.0  # as highway-env draws it
            cos, sin = np.cos(heading), np.sin(heading)
            x, y = surface.vec2pix(vehicle.position)
            cx, cy = x + dx * cos - dy * sin + blit, y + dx * sin + dy * cos + blit
            half_x = (abs(cos) * length + abs(sin) * width) / 2
            half_y = (abs(sin) * length + abs(cos) * width) / 2
            x1, x2 = np.clip((cx - half_x, cx + half_x), 0, self.bev_size)
            y1, y2 = np.clip((cy - half_y, cy + half_y), 0, self.bev_size)
            if x2 > x1 and y2 > y1:
                label = OBJECT_CLASSES.index("crashed_car" if vehicle.crashed else "car")
                rows.append((x1, y1, x2, y2, label, 1.0))
            if len(rows) == MAX_OBJECTS:
                break
        out = np.zeros((MAX_OBJECTS, len(OBJECT_FIELDS)), dtype=np.float32)
        out[:len(rows)] = np.reshape(rows, (-1, len(OBJECT_FIELDS)))
        return out

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
