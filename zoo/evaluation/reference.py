"""Reference policies: what a results table is read against.

A learnt driver means something only beside drivers that need no learning. Three kinds, by name:

* ``constant:<ACTION>``: the same meta-action at every decision (``constant:SLOWER`` …). A task that one of
  these solves ranks nothing.
* ``random``: a meta-action drawn uniformly at every decision, seeded by the episode's seed.
* ``idm``: a rule-based driver from highway-env's own traffic models, privileged (it reads the simulator's
  state, not the observation): at every decision it asks an :class:`IDMVehicle` standing in the ego car's place,
  with the fastest meta-action speed as its target, whether MOBIL changes lane and which acceleration IDM
  commands, and picks the meta-action that does the same; it gives way to crossing traffic by highway-env's own
  right-of-way rules (those its ``RegulatedRoad`` applies to the intersection's traffic), and on a roundabout, whose
  lanes highway-env gives no priorities, to the traffic on the ring. At the intersection, where the ego car turns
  left on the lane of lowest priority, it instead plays each meta-action forward with the ego car's own controllers
  and takes the fastest that meets no other car (:func:`_intersection_meta_action`). It drives the ego car
  through the same meta-actions and the same controllers as a learnt policy, so its success rate shows that the task can be done with them.

All run through :func:`zoo.evaluation.rollout.run_episodes`, the loop of :func:`zoo.evaluate`: same env, same
metrics, same held-out seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from highway_env import utils
from highway_env.envs.intersection_env import IntersectionEnv
from highway_env.envs.roundabout_env import RoundaboutEnv
from highway_env.road.lane import CircularLane
from highway_env.road.regulation import RegulatedRoad
from highway_env.vehicle.behavior import IDMVehicle
from tensordict import TensorDictBase

from zoo.envs.driving import meta_action_names
from zoo.envs.make import make_env
from zoo.envs.presets import SCENARIOS
from zoo.errors import ZooError
from zoo.evaluation.rollout import EvaluationResult, held_out_seeds, run_episodes
from zoo.registry import unknown_choice

#: every highway-env meta-action (a scenario offers all or some of them: ``meta_action_names``)
META_ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
#: reference policy names: one constant policy per meta-action, uniform random, the IDM/MOBIL driver
REFERENCE_POLICIES = (*(f"constant:{action}" for action in META_ACTIONS), "random", "idm")
#: seconds ahead in which the IDM driver looks for crossing traffic (highway-env's regulation looks 3 s ahead, too
#: late for a car that needs 2 s of meta-actions to stop from 9 m/s; 5 s yielded more often on 10 seeds, 0.8 SR vs 0.6)
_CONFLICT_HORIZON_S = 5
#: upper bound on the other cars' speeds (m/s), so that the conflict search skips cars too far to meet in time
_FASTEST_TRAFFIC_MPS = 40.0
#: seconds the intersection's give-way driver plays each meta-action forward, and how often it checks for overlaps
#: (every third step of highway-env's 15 Hz intersection simulation)
_INTERSECTION_HORIZON_S = 5.0
_INTERSECTION_PREDICTION_HZ = 5
_INTERSECTION_SIMULATION_HZ = 15
#: m/s² at which the intersection's give-way driver lets a slow or waiting car set off again (highway-env's
#: regulation releases a yielding car within half a second; its traffic accelerates at up to 6 m/s² there)
_TRAFFIC_START_ACCELERATION = 3.0

Policy = Callable[[TensorDictBase], TensorDictBase]


@dataclass(frozen=True)
class ReferencePolicy:
    """A policy that needs no training, by name (:data:`REFERENCE_POLICIES`)."""

    name: str

    def for_episode(self, env: Any, seed: int) -> Policy:
        """The policy that drives one episode of ``env`` (a single zoo env with meta-actions) reset with ``seed``."""
        driving = env.base_env._env
        actions = meta_action_names(driving.preset)
        if self.name == "random":
            return _random_policy(len(actions), seed)
        if self.name == "idm":
            return lambda td: _write_action(td, actions.index(idm_meta_action(driving.unwrapped, actions)))
        index = actions.index(self.name.removeprefix("constant:"))
        return lambda td: _write_action(td, index)


def reference_policy(name: str) -> ReferencePolicy:
    """A reference policy by name: ``constant:<ACTION>``, ``random`` or ``idm``.

    Example:
        >>> import zoo
        >>> zoo.reference_policy("constant:SLOWER").name
        'constant:SLOWER'
    """
    if name not in REFERENCE_POLICIES:
        raise ZooError(unknown_choice("reference policy", name, list(REFERENCE_POLICIES)))
    return ReferencePolicy(name)


def reference_policies(scenario: str) -> list[str]:
    """The reference policy names that apply to ``scenario`` (its own meta-actions, random, idm)."""
    preset = SCENARIOS.get(scenario)
    if "discrete" not in preset.action_modes:
        raise ZooError(f"reference policies drive meta-actions; scenario {scenario!r} has none (action modes "
                       f"{list(preset.action_modes)}). Valid scenarios: "
                       f"{', '.join(n for n in SCENARIOS.names() if 'discrete' in SCENARIOS.get(n).action_modes)}.")
    actions = meta_action_names(preset)
    return [*(f"constant:{action}" for action in META_ACTIONS if action in actions), "random", "idm"]


def evaluate_reference(
    policy: str | ReferencePolicy,
    scenario: str,
    episodes: int = 10,
    seed: int = 0,
    condition: str = "default",
    video: str | Path | None = None,
    max_steps: int = 2_000,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate a reference policy as :func:`zoo.evaluate` does a trained agent.

    Same held-out seeds (episode ``i`` resets with ``EVAL_SEED_OFFSET + seed + i``), meta-actions, kinematics
    observations, highway-env's engineered reward for ``return``; per-episode metrics in ``.episodes``.

    Args:
        policy: a name (:data:`REFERENCE_POLICIES`) or a :class:`ReferencePolicy`.
        scenario: a scenario with meta-actions.
        episodes: number of episodes.
        seed: evaluation seed (offset into the held-out range).
        condition: ``"default"`` or ``"unseen"`` traffic (``zoo.envs.presets.CONDITIONS``).
        video: write the first episode as a GIF/MP4 at this path.
        max_steps: safety cap on steps per episode.
        progress: show a progress bar.

    Example:
        >>> import zoo
        >>> result = zoo.evaluate_reference("constant:SLOWER", "highway-fast", episodes=1)
        >>> result.summary["CR"][0] <= 1.0
        True
    """
    policy = reference_policy(policy) if isinstance(policy, str) else policy
    valid = reference_policies(scenario)
    if policy.name not in valid:  # e.g. constant:LANE_LEFT where highway-env offers no lane change
        raise ZooError(f"reference policy {policy.name!r} does not apply to scenario {scenario!r}, whose "
                       f"meta-actions are {', '.join(meta_action_names(SCENARIOS.get(scenario)))}. "
                       f"Valid choices: {', '.join(valid)}.")
    env = make_env(scenario, action="discrete", obs="kinematics", condition=condition)
    return run_episodes(env, lambda episode_seed: policy.for_episode(env, episode_seed), scenario,
                        held_out_seeds(episodes, seed), video=video, max_steps=max_steps, progress=progress)


def _write_action(td: TensorDictBase, index: int) -> TensorDictBase:
    return td.set("action", torch.tensor(index, dtype=torch.int64))


def _random_policy(num_actions: int, seed: int) -> Policy:
    generator = np.random.default_rng(seed)  # per episode: episode i's actions do not depend on episodes before it
    return lambda td: _write_action(td, int(generator.integers(num_actions)))


# -- the IDM/MOBIL driver -------------------------------------------------------------------------------------------
def idm_meta_action(highway: Any, actions: tuple[str, ...]) -> str:
    """The meta-action that does what highway-env's IDM + MOBIL driver would do in the ego car's place.

    Lane: MOBIL's decision (only between lane changes, and only where the scenario has lane-change actions).
    Speed: one step towards the fastest meta-action target speed at which the gap to the car ahead is at least
    IDM's desired gap and the ego car need not yield to crossing traffic (:func:`_must_yield`); the slowest one if
    there is none (a meta-action has no harder brake).
    """
    ego = highway.vehicle
    if _is_intersection(highway):
        return _intersection_meta_action(ego, actions)
    stand_in = IDMVehicle.create_from(ego)
    stand_in.target_speed = float(ego.target_speeds[-1])
    with _standing_in_for(ego, stand_in):
        lane_change = _mobil_lane_change(stand_in, ego) if "LANE_LEFT" in actions else None
        front, _ = ego.road.neighbour_vehicles(stand_in, ego.lane_index)
        wanted = _fastest_safe_speed(stand_in, ego.target_speeds, front, isinstance(highway, RoundaboutEnv))
    if lane_change is not None:
        return lane_change
    return "FASTER" if wanted > ego.speed_index else "SLOWER" if wanted < ego.speed_index else "IDLE"


def _is_intersection(highway: Any) -> bool:
    return isinstance(highway, IntersectionEnv)


def _intersection_meta_action(ego: Any, actions: tuple[str, ...]) -> str:
    """The intersection's give-way driver: the fastest meta-action after which the ego car meets nobody.

    Each meta-action is played forward for :data:`_INTERSECTION_HORIZON_S` with the ego car's own controllers (its
    speed ramps to the new target speed as it will in the env, where the generic driver's constant-speed stand-in
    arrived early and braked inside the junction), against every other car driven along its route at constant speed
    (highway-env's ``predict_trajectory_constant_speed``); a car that highway-env's regulation holds (``is_yielding``)
    is also played as setting off again at :data:`_TRAFFIC_START_ACCELERATION`. Overlap: the ego car's box as in
    ``RegulatedRoad.is_conflict_possible`` (1.5 lengths), the other's at its size. The ego car turns left on the lane
    of lowest priority, so it gives way to every car it would meet; cars behind it on its own lane follow it and are
    left to their IDM. The front gap is checked as elsewhere (IDM's desired gap at the new target speed). Where every
    meta-action meets someone (the ego car is already in a path), it takes the one that meets them latest: clearing
    the way rather than stopping in it. Used on highway-env's intersection only; other scenarios keep
    :func:`_fastest_safe_speed`.
    """
    dt = 1 / _INTERSECTION_PREDICTION_HZ
    times = np.arange(dt, _INTERSECTION_HORIZON_S + dt / 2, dt)
    others = []
    for other in ego.road.vehicles:
        if other is ego or (other.lane_index == ego.lane_index and ego.front_distance_to(other) < 0):
            continue
        waiting = getattr(other, "is_yielding", False)  # stopped by highway-env's regulation, released soon
        for acceleration in (0.0, _TRAFFIC_START_ACCELERATION) if waiting else (0.0,):
            positions, headings = _route_trajectory(other, times, acceleration)
            others.append((other, positions, headings))
    stand_in = IDMVehicle.create_from(ego)
    front, _ = ego.road.neighbour_vehicles(ego, ego.lane_index)
    gap = ego.lane_distance_to(front) if front is not None else np.inf
    best, best_meeting = "SLOWER", -1.0
    for action in ("FASTER", "IDLE", "SLOWER"):
        if action not in actions:
            continue
        ghost = _ghost(ego)
        ghost.act(action)
        stand_in.speed = float(ghost.target_speed)
        if action != "SLOWER" and front is not None and stand_in.desired_gap(stand_in, front) > gap:
            continue
        meeting = _first_meeting(ghost, others, times, dt)
        if meeting is None:
            return action
        if meeting > best_meeting + 1e-9:
            best, best_meeting = action, meeting
    return best


def _ghost(ego: Any) -> Any:
    """A copy of the ego car (dynamics, target speed and route) that is not on the road: played forward alone."""
    ghost = type(ego)(ego.road, ego.position, heading=ego.heading, speed=ego.speed,
                      target_lane_index=ego.target_lane_index, target_speed=ego.target_speed,
                      target_speeds=ego.target_speeds, route=list(ego.route) if ego.route else None)
    ghost.speed_index = ego.speed_index
    ghost.target_speed = ego.target_speed
    return ghost


def _route_trajectory(vehicle: Any, times: np.ndarray, acceleration: float) -> tuple[Any, Any]:
    """Poses along the vehicle's route, at constant speed or speeding up at ``acceleration`` to its lane's limit.

    highway-env's ``predict_trajectory_constant_speed`` where ``acceleration`` is 0, except just before a lane's end:
    there highway-env has already dropped the lane from the route, and predicting along the rest of the route from the
    position on the old lane put a car entering the junction tens of metres past it (and the give-way driver drove
    into it).
    """
    speed = max(float(vehicle.speed), 0.0)
    top = max(speed, float(vehicle.lane.speed_limit or speed))
    ramp = (top - speed) / acceleration if acceleration > 0 else 0.0
    ramped = np.minimum(times, ramp)
    distances = speed * times + 0.5 * acceleration * ramped**2 + (top - speed) * np.maximum(times - ramp, 0.0) \
        if acceleration > 0 else speed * times
    start = vehicle.lane.local_coordinates(vehicle.position)[0]
    network = vehicle.road.network
    route = list(vehicle.route or [])
    if not route or route[0][:2] != vehicle.lane_index[:2]:  # highway-env drops a lane from the route a few metres
        route.insert(0, vehicle.lane_index)                   # before its end, while the car is still on it
    try:
        poses = [network.position_heading_along_route(route, start + d, 0, vehicle.lane_index) for d in distances]
    except IndexError:  # a route's next road with fewer lanes: predicted along the current lane
        poses = [network.position_heading_along_route([vehicle.lane_index], start + d, 0, vehicle.lane_index)
                 for d in distances]
    return tuple(zip(*poses, strict=False))


def _first_meeting(ghost: Any, others: list, times: np.ndarray, dt: float) -> float | None:
    """Seconds until the played-forward ego car overlaps another car's predicted box; ``None`` if it never does."""
    steps = round(_INTERSECTION_SIMULATION_HZ * dt)
    sim_dt = dt / steps
    for k, t in enumerate(times):
        for _ in range(steps):
            ghost.act()
            ghost.step(sim_dt)
        for other, positions, headings in others:
            if np.linalg.norm(positions[k] - ghost.position) > 2 * ghost.LENGTH:
                continue
            if utils.rotated_rectangles_intersect(
                    (ghost.position, 1.5 * ghost.LENGTH, 0.9 * ghost.WIDTH, ghost.heading),
                    (positions[k], other.LENGTH, other.WIDTH, headings[k])):
                return float(t)
    return None


def _fastest_safe_speed(stand_in: Any, target_speeds: np.ndarray, front: Any, roundabout: bool = False) -> int:
    """Index of the fastest target speed that keeps IDM's desired gap ahead and yields where it must; 0 if none.

    IDM brakes harder than its comfortable deceleration exactly when the gap is below its desired gap, which grows
    with the speed and the closing speed.
    """
    gap = stand_in.lane_distance_to(front) if front is not None else np.inf
    wanted = 0
    for index, speed in enumerate(target_speeds):
        stand_in.speed = float(speed)
        keeps_gap = front is None or stand_in.desired_gap(stand_in, front) <= gap
        if keeps_gap and not _must_yield(stand_in, roundabout):
            wanted = index
    return wanted


def _must_yield(stand_in: Any, roundabout: bool = False) -> bool:
    """Whether the stand-in, at its speed, meets another car within 5 s that it must give way to and can still avoid.

    highway-env's own right-of-way machinery (``RegulatedRoad``, which stops the intersection's traffic but never
    the ego car): both cars driven along their routes at constant speed (``is_conflict_possible``), and the one on
    the lane of lower priority, or at equal priority the one behind, gives way (``respect_priorities``). A car
    that would meet the other even standing still is already in its path: stopping there helps nobody, so it
    does not yield but clears the way.

    On a roundabout (``roundabout``: highway-env's ``RoundaboutEnv``, whose lanes all have the same priority, so
    that "the one behind" would decide) the roundabout rule instead: a car entering gives way to the cars on the
    ring, and a car on the ring yields only to a car ahead of it (highway-env's entering traffic does not give way;
    stopping for a car behind would only get the ego car rear-ended).
    """
    speed = stand_in.speed
    reach = _CONFLICT_HORIZON_S * (speed + _FASTEST_TRAFFIC_MPS) + stand_in.LENGTH
    for other in stand_in.road.vehicles:
        if other is stand_in or np.linalg.norm(other.position - stand_in.position) > reach:
            continue
        if roundabout:
            # entering: give way to the ring's traffic; on the ring: do not run into a car ahead (one entering too)
            gives_way = stand_in.front_distance_to(other) > 0 if _circulating(stand_in) else _circulating(other)
            if not gives_way or not _conflict_possible(stand_in, other):
                continue
        elif (not _conflict_possible(stand_in, other)
              or RegulatedRoad.respect_priorities(stand_in, other) is not stand_in):
            continue
        stand_in.speed = 0.0
        in_its_path = _conflict_possible(stand_in, other)
        stand_in.speed = speed
        if not in_its_path:
            return True
    return False


def _circulating(vehicle: Any) -> bool:
    """Whether ``vehicle`` drives on a roundabout's ring (highway-env builds the ring of ``CircularLane``s, its
    entries and exits of straight and sine lanes)."""
    return isinstance(vehicle.lane, CircularLane)


def _conflict_possible(first: Any, second: Any) -> bool:
    """highway-env's ``is_conflict_possible``; along the current lanes where a route cannot be followed.

    highway-env predicts a route's next road on the lane number of the current one, which fails (IndexError) where
    the next road has fewer lanes, e.g. from the roundabout's inner lane into an exit.
    """
    try:
        return RegulatedRoad.is_conflict_possible(first, second, horizon=_CONFLICT_HORIZON_S)
    except IndexError:
        routes = first.route, second.route
        first.route = second.route = None  # predicted along the current lane instead
        try:
            return RegulatedRoad.is_conflict_possible(first, second, horizon=_CONFLICT_HORIZON_S)
        finally:
            first.route, second.route = routes


def _mobil_lane_change(stand_in: Any, ego: Any) -> str | None:
    if ego.lane_index != ego.target_lane_index:  # still changing lane
        return None
    network = ego.road.network
    for lane_index in network.side_lanes(ego.lane_index):
        if network.get_lane(lane_index).is_reachable_from(ego.position) and stand_in.mobil(lane_index):
            return "LANE_LEFT" if lane_index[2] < ego.lane_index[2] else "LANE_RIGHT"
    return None


@contextmanager
def _standing_in_for(ego: Any, stand_in: Any) -> Iterator[None]:
    """Put ``stand_in`` in the ego car's place on the road, so that neighbour searches do not find the ego car itself."""
    vehicles = ego.road.vehicles
    index = vehicles.index(ego)
    vehicles[index] = stand_in
    try:
        yield
    finally:
        vehicles[index] = ego
