"""Scenario presets: which highway-env environment, with which settings, and what its route is.

``route_length_m`` defines route completion (RC) and success (SR) uniformly across scenarios: the ego
car succeeds when its episode ends without a collision after covering the route length. Values are
the distance a competent driver covers within the scenario's time limit (highway, racetrack) or from
spawn to the scenario's exit (merge, roundabout, intersection), measured with highway-env's own
controllers; see docs/envs.md. Where highway-env offers it, leaving the road ends the episode
(``offroad_terminal``), as leaving the route does in the papers' CARLA setup.

Continuous control: highway-env decides once per simulated second on most scenarios and steers up to ±45°,
made for meta-actions that its own controllers carry out. A (steer, throttle) command held for a second at
that range leaves the road within one or two decisions, so a continuous-control learner never sees a long
episode (docs/envs.md, measured). Presets therefore set ``continuous_frequency_hz`` (decisions per simulated
second with continuous actions; the papers' CARLA setup decides at 10–15 Hz) and ``steering_limit_rad``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoo.registry import Registry


@dataclass(frozen=True)
class ScenarioPreset:
    """One driving scenario.

    Attributes:
        name: zoo name of the scenario.
        gym_id: highway-env environment id.
        route_length_m: distance that counts as route completion 1.0.
        config: highway-env config overrides applied on top of the environment's defaults.
        lateral_only: the scenario steers only (racetrack); continuous actions are then [steer].
        action_modes: action modes the scenario supports (merge-v0's and roundabout-v0's rewards are defined
            on meta-actions only; racetrack-v0 builds no meta-action controller).
        continuous_frequency_hz: decisions per simulated second with continuous actions (``policy_frequency``;
            at most the scenario's ``simulation_frequency``); ``None`` keeps highway-env's own.
        steering_limit_rad: largest steering angle a continuous action of ±1 commands; ``None`` keeps
            highway-env's ±π/4.
        description: one line for ``zoo.list_scenarios()`` tables.
        version: bumped whenever the preset changes what an episode is (traffic, limits, route): a policy card
            pins the version it was trained on.
    """

    name: str
    gym_id: str
    route_length_m: float
    config: dict[str, Any] = field(default_factory=dict)
    lateral_only: bool = False
    action_modes: tuple[str, ...] = ("continuous", "discrete")
    continuous_frequency_hz: int | None = None
    steering_limit_rad: float | None = None
    description: str = ""
    version: int = 1


SCENARIOS: Registry[ScenarioPreset] = Registry("scenario")

for _preset in (
    ScenarioPreset("highway", "highway-v0", 800.0, {"duration": 40, "offroad_terminal": True},
                   continuous_frequency_hz=5, steering_limit_rad=0.1,
                   description="4-lane highway with dense traffic, 40 s"),
    ScenarioPreset("highway-fast", "highway-fast-v0", 600.0, {"duration": 30, "offroad_terminal": True},
                   continuous_frequency_hz=5, steering_limit_rad=0.1,
                   description="highway with fewer simulation steps per action (the SB3 reference setting), 30 s"),
    ScenarioPreset("merge", "merge-v0", 330.0, {}, action_modes=("discrete",), description="highway with a merging on-ramp; ends past the merge"),
    ScenarioPreset("roundabout", "roundabout-v0", 80.0, {"duration": 11}, action_modes=("discrete",),
                   description="enter, cross and leave a roundabout, 11 s"),
    ScenarioPreset("intersection", "intersection-v0", 75.0,
                   {"duration": 13, "offroad_terminal": True,
                    "other_vehicles_type": "zoo.envs.vehicles.IntersectionIDMVehicle"},
                   continuous_frequency_hz=5,  # turning needs highway-env's full steering range
                   description="turn at an unsignalised intersection, ends on arrival"),
    ScenarioPreset("racetrack", "racetrack-v0", 400.0, {"duration": 60, "other_vehicles": 1}, lateral_only=True,
                   action_modes=("continuous",),
                   description="follow a winding track with one other car, 60 s"),
):
    SCENARIOS.register(_preset.name, _preset)
