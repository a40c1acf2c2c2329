"""highway-env scenarios as TorchRL envs: specs, BEV frames, vehicle state, action layout, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

import zoo
from zoo import keys
from zoo.envs import SCENARIOS, DrivingEnv, EnvConfig
from zoo.errors import ZooError


def _base(env) -> DrivingEnv:
    """The zoo's gymnasium env under a single (not batched) TorchRL env."""
    return env.base_env._env


def _spec_cases():
    for name in zoo.list_scenarios():
        for action in SCENARIOS.get(name).action_modes:
            yield pytest.param(name, action, id=f"{name}-{action}")


# -- specs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("scenario", "action"), list(_spec_cases()))
def test_check_env_specs_every_scenario_and_action_mode(scenario, action):
    env = zoo.make_env(scenario, obs="kinematics", action=action, seed=0)
    try:
        check_env_specs(env)
        td = env.reset()
        assert keys.OBSERVATION in td.keys()
        assert keys.PIXELS not in td.keys()
        for field in keys.VEHICLE_STATE_FIELDS:
            assert td[keys.VEHICLE_STATE, field].shape == (1,)
        if action == "continuous":
            # (steer, throttle), or steer only on lateral-only scenarios
            assert env.action_spec.shape == ((1,) if SCENARIOS.get(scenario).lateral_only else (2,))
    finally:
        env.close()


def test_check_env_specs_bev_and_kinematics():
    env = zoo.make_env("highway-fast", obs="both", bev_size=64, seed=0)
    try:
        check_env_specs(env)
        td = env.rollout(3)
        assert td["next", keys.PIXELS].shape == (3, 3, 64, 64)
        assert td["next", keys.PIXELS].dtype == torch.uint8
        assert td["next", keys.OBSERVATION].dtype == torch.float32
    finally:
        env.close()


def test_bev_only_has_no_vector_observation():
    env = zoo.make_env("highway-fast", obs="bev", bev_size=64, seed=0)
    try:
        td = env.reset()
        assert keys.PIXELS in td.keys() and keys.OBSERVATION not in td.keys()
    finally:
        env.close()


def test_check_env_specs_parallel_envs():
    env = zoo.make_env("highway-fast", num_envs=2, seed=0)
    try:
        check_env_specs(env)
        td = env.rollout(3)
        assert td.batch_size == (2, 3)
        assert td["next", keys.SPEED].shape == (2, 3, 1)
    finally:
        env.close()


# -- worker processes are never left behind --------------------------------------------------------
def _run_script(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` as a plain script (its own ``__main__``, spawn start method); a hang fails the test."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(zoo.__file__).parents[1]), *sys.path])}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path, env=env)


def _worker_pids(stdout: str) -> list[int]:
    """The pids the script printed on its ``workers:`` line (``multiprocessing.active_children()``)."""
    line = next(line for line in stdout.splitlines() if line.startswith("workers:"))
    return [int(pid) for pid in line.split()[1:]]


def _alive(pid: int) -> bool:
    """Whether a process runs (psutil may be absent, so /proc; an unreaped zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_script_without_main_guard_raising_after_make_env_exits_and_leaves_no_worker(tmp_path):
    result = _run_script(tmp_path, """
        import multiprocessing
        import zoo
        env = zoo.make_env("merge", num_envs=2, seed=0)
        env.rollout(2)
        print("workers:", *[p.pid for p in multiprocessing.active_children()], flush=True)
        raise ValueError("a user's bug after make_env")
        """)
    assert result.returncode == 1 and "a user's bug after make_env" in result.stderr, result.stderr[-2000:]
    pids = _worker_pids(result.stdout)
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)


def test_leaving_a_with_block_by_an_exception_closes_the_workers(tmp_path):
    result = _run_script(tmp_path, """
        import multiprocessing
        import zoo
        if __name__ == "__main__":
            try:
                with zoo.make_env("merge", num_envs=2, seed=0) as env:
                    print("workers:", *[p.pid for p in multiprocessing.active_children()], flush=True)
                    raise ValueError("inside the block")
            except ValueError:
                print("left with:", len(multiprocessing.active_children()), "workers", env.is_closed)
        """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "left with: 0 workers True" in result.stdout and len(_worker_pids(result.stdout)) == 2


def test_building_an_env_prints_no_third_party_noise(tmp_path):
    """gymnasium's "merge-v0 is out of date" is filtered (zoo/_noise.py), in the workers too."""
    result = _run_script(tmp_path, """
        import zoo
        with zoo.make_env("merge", num_envs=2) as env:
            env.rollout(2)
        """)
    assert result.returncode == 0 and "out of date" not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(("speed", "index"), [(None, 0), (4.5, 1)])
def test_the_intersection_ego_car_starts_at_the_configured_speed(speed, index):
    """zoo-intersection-v0 starts the ego car at ``ego_initial_speed`` and the meta-action target speed nearest it
    (the preset: standing, so IDLE and SLOWER never move)."""
    env = zoo.make_env("intersection", seed=0, config={} if speed is None else {"ego_initial_speed": speed})
    expected = 0.0 if speed is None else speed
    try:
        env.reset()
        ego = env.base_env._env.unwrapped.vehicle
        assert ego.speed == pytest.approx(expected) and ego.target_speed == pytest.approx(expected)
        assert ego.speed_index == index
    finally:
        env.close()


#: the intersection's east-west lanes, both directions: approach, straight across the junction, exit
PRIORITY_ROAD_LANES = {("o1", "ir1"), ("ir1", "il3"), ("il3", "o3"), ("o3", "ir3"), ("ir3", "il1"), ("il1", "o1")}


@pytest.mark.parametrize("action", ["discrete", "continuous"])
def test_intersection_through_traffic_drives_straight_on_the_priority_road(action):
    """With ``through_traffic_headway_range`` every other car comes from the east-west road and goes straight across,
    and new cars keep entering at both of the road's ends."""
    traffic = {"through_traffic_headway_range": [3.0, 6.0], "challenger_range": [58.0, 68.0]}
    env = zoo.make_env("intersection", action=action, config=traffic)
    try:
        driving = _base(env)
        driving.reset(seed=0)
        road, ego = driving.unwrapped.road, driving.unwrapped.vehicle
        hold = 1 if action == "discrete" else np.zeros(2, dtype=np.float32)  # IDLE, or no steering and no throttle
        at_start = {id(v) for v in road.vehicles}
        for _ in range(7 if action == "discrete" else 35):  # 7 simulated seconds: more than one headway
            others = [v for v in road.vehicles if v is not ego]
            for vehicle in others:  # east-west lanes only: approach, straight across, exit (no turns)
                assert vehicle.lane_index[:2] in PRIORITY_ROAD_LANES, vehicle.lane_index
            driving.step(hold)
        others = [v for v in road.vehicles if v is not ego]
        assert len({id(v) for v in others} - at_start) >= 2  # each stream's next car entered
        assert any(v.lane_index[:2] == ("o1", "ir1") for v in others)
        assert any(v.lane_index[:2] == ("o3", "ir3") for v in others)
    finally:
        env.close()


def test_intersection_challenger_starts_in_range():
    """``challenger_range`` puts one priority-road car that far along its approach lane at the start."""
    env = zoo.make_env("intersection", config={"through_traffic_headway_range": [3.0, 6.0],
                                               "challenger_range": [58.0, 68.0]})
    try:
        for seed in range(5):
            env.reset(seed=seed)
            unwrapped = _base(env).unwrapped
            positions = [v.lane.local_coordinates(v.position)[0] for v in unwrapped.road.vehicles
                         if v is not unwrapped.vehicle and v.lane_index[0] in ("o1", "o3")]
            assert any(58.0 <= s <= 68.0 for s in positions), positions
    finally:
        env.close()


#: platoons from upstream signals: a car every ~2 s per stream while green, 6 s of red in a 22 s cycle
SIGNALLED_TRAFFIC = {"through_traffic_headway_range": [1.9, 2.1], "through_traffic_signal": [22.0, 16.0],
                     "through_traffic_speed_range": [8.8, 9.0]}


def _stream_cars(unwrapped, approach: tuple[str, str]) -> list:
    return sorted((v for v in unwrapped.road.vehicles if v.lane_index[:2] == approach),
                  key=lambda v: v.lane.local_coordinates(v.position)[0])


def test_dense_through_traffic_enters_behind_the_car_ahead():
    """Headways of ~2 s are shorter than IDM's default desired gap: the stream's cars slow down, and a car due to enter
    comes in a jam gap behind the last one instead of on top of it (before, they piled up at the road's ends)."""
    env = zoo.make_env("intersection", config=SIGNALLED_TRAFFIC)
    try:
        driving = _base(env)
        driving.reset(seed=3)
        unwrapped = driving.unwrapped
        for _ in range(25):
            driving.step(0)  # SLOWER: the ego car waits
            for approach in (("o1", "ir1"), ("o3", "ir3")):
                cars = _stream_cars(unwrapped, approach)
                for behind, ahead in zip(cars, cars[1:]):
                    gap = ahead.lane.local_coordinates(ahead.position)[0] - behind.lane.local_coordinates(behind.position)[0]
                    assert gap > behind.LENGTH, (approach, gap)
            assert not any(v.crashed for v in unwrapped.road.vehicles if v is not unwrapped.vehicle)
    finally:
        env.close()


def test_signalled_through_traffic_leaves_gaps_between_platoons():
    """With ``through_traffic_signal`` no car enters during red: over a cycle, each stream's entries leave one gap of
    at least the red time and none longer than a headway plus the jam delay elsewhere."""
    env = zoo.make_env("intersection", config={**SIGNALLED_TRAFFIC, "duration": 40})
    try:
        driving = _base(env)
        driving.reset(seed=1)
        unwrapped = driving.unwrapped
        entries = {end: [] for end in ("o1", "o3")}
        seen = list(unwrapped.road.vehicles)  # the cars themselves: a removed car's id() may be reused
        for _ in range(30):
            driving.step(0)
            for v in unwrapped.road.vehicles:
                if not any(v is known for known in seen):
                    seen.append(v)
                    entries[v.lane_index[0]].append(unwrapped.time)
        for end, times in entries.items():
            gaps = np.diff(times)
            assert gaps.max() >= 22.0 - 16.0 - 1.0, (end, times)  # the red phase (entries fall on 1 s steps)
            assert np.sort(gaps)[-2] <= 4.0, (end, times)  # within a platoon: ~2 s headways
    finally:
        env.close()


def test_through_traffic_does_not_brake_for_the_ego_car():
    """The stream has right of way: a car in its lane that does not belong to the traffic is not waited for."""
    from highway_env.vehicle.behavior import IDMVehicle

    from zoo.envs.vehicles import ThroughTrafficIDMVehicle

    env = zoo.make_env("intersection", config=SIGNALLED_TRAFFIC)
    try:
        driving = _base(env)
        driving.reset(seed=0)
        road = driving.unwrapped.road
        lane = road.network.get_lane(("o1", "ir1", 0))
        car = ThroughTrafficIDMVehicle.make_on_lane(road, ("o1", "ir1", 0), 20.0, 9.0)
        stopped_traffic = IDMVehicle.make_on_lane(road, ("o1", "ir1", 0), 30.0, 0.0)
        intruder = type(driving.unwrapped.vehicle)(road, lane.position(30.0, 0.0), heading=lane.heading_at(30.0), speed=0.0)
        assert car.acceleration(car, stopped_traffic) < -3.0  # IDM brakes hard for a stopped car of the traffic
        assert car.acceleration(car, intruder) == pytest.approx(car.acceleration(car, None))
    finally:
        env.close()


def test_building_one_scenario_leaves_the_traffic_of_others_unchanged():
    from highway_env.vehicle.behavior import IDMVehicle

    names = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")
    before = {name: getattr(IDMVehicle, name) for name in names}
    env = zoo.make_env("intersection", seed=0)
    env.rollout(2)
    env.close()
    assert {name: getattr(IDMVehicle, name) for name in before} == before  # conftest restores them afterwards


# -- BEV frames -----------------------------------------------------------------------------------
def _assert_not_blank(frame: np.ndarray) -> None:
    """A real BEV frame shows road, lane markings and cars: several colours with a spread of values."""
    colours = np.unique(frame.reshape(3, -1).T, axis=0)
    assert frame.std() > 10, f"frame looks blank (std {frame.std():.2f})"
    assert len(colours) >= 3, f"frame has only {len(colours)} colour(s)"


def test_bev_frames_are_not_blank_and_change_as_the_car_moves():
    torch.manual_seed(0)
    env = zoo.make_env("highway-fast", obs="bev", bev_size=64, seed=0)
    try:
        td = env.rollout(4)
    finally:
        env.close()
    frames = td["next", keys.PIXELS].numpy()
    for frame in frames:
        _assert_not_blank(frame)
    distance = td["next", keys.DISTANCE].squeeze(-1)
    assert distance[3] > distance[0] > 0
    assert np.abs(frames[3].astype(int) - frames[0].astype(int)).mean() > 0.1


def test_bev_frames_are_not_blank_with_the_dummy_sdl_driver(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = zoo.make_env("highway-fast", obs="bev", bev_size=64, seed=0)
    try:
        frames = env.rollout(2)["next", keys.PIXELS].numpy()
    finally:
        env.close()
    for frame in frames:
        _assert_not_blank(frame)


# -- vehicle state --------------------------------------------------------------------------------
def _reference_state(env: DrivingEnv) -> dict[str, float]:
    """Vehicle state read straight from highway-env's objects."""
    vehicle = env.unwrapped.vehicle
    lane = env.unwrapped.road.network.get_lane(vehicle.lane_index)
    longitudinal, lateral = lane.local_coordinates(vehicle.position)
    error = vehicle.heading - lane.heading_at(longitudinal)
    return {"speed": vehicle.speed, "lateral_offset": lateral,
            "heading_error": np.arctan2(np.sin(error), np.cos(error)),
            "on_road": float(vehicle.on_road), "crashed": float(vehicle.crashed)}


def _state(obs: dict) -> dict[str, float]:
    return {name: float(value[0]) for name, value in obs[keys.VEHICLE_STATE].items()}


def test_vehicle_state_agrees_with_highway_env():
    preset = SCENARIOS.get("highway-fast")
    env = DrivingEnv(EnvConfig(preset.name, obs="kinematics", action="continuous"))
    obs, _ = env.reset(seed=0)
    assert _state(obs)["distance"] == 0.0
    distance, seen = 0.0, []
    # reset state, gentle steering within the lane, then full steering until off the road (5 Hz, ±0.1 rad: ~2 s)
    for action in [None, (0.01, 0.5), (-0.01, 0.0), (0.0, -0.5), *[(1.0, 1.0)] * 25]:
        if seen and seen[-1]["on_road"] == 0.0:
            break
        if action is not None:
            before = env.unwrapped.vehicle.position.copy()
            obs, *_ = env.step(np.array(action, dtype=np.float32))
            distance += float(np.linalg.norm(env.unwrapped.vehicle.position - before))
        state = _state(obs)
        for name, expected in _reference_state(env).items():
            assert state[name] == pytest.approx(expected, rel=1e-5, abs=1e-4), name
        assert state["distance"] == pytest.approx(distance, rel=1e-5)
        assert state["route_progress"] == pytest.approx(distance / preset.route_length_m, rel=1e-5)
        seen.append(state)
    env.close()
    # the scripted drive really exercised the values being compared
    assert any(abs(s["lateral_offset"]) > 0.1 for s in seen)
    assert any(abs(s["heading_error"]) > 0.01 for s in seen)
    assert {s["on_road"] for s in seen} == {0.0, 1.0}


def test_crashed_flag_agrees_with_highway_env():
    env = DrivingEnv(EnvConfig("highway-fast", action="continuous", config={"vehicles_density": 3}))
    obs, _ = env.reset(seed=0)
    assert _state(obs)["crashed"] == 0.0
    for _ in range(30):  # full throttle into dense traffic
        obs, _, terminated, truncated, _ = env.step(np.array([0.0, 1.0], dtype=np.float32))
        assert _state(obs)["crashed"] == float(env.unwrapped.vehicle.crashed)
        if terminated or truncated:
            break
    env.close()
    assert terminated and _state(obs)["crashed"] == 1.0


def test_torchrl_env_vehicle_state_matches_the_simulator():
    env = zoo.make_env("highway-fast", action="continuous", seed=0)
    try:
        td = env.reset()
        assert td[keys.SPEED].item() == pytest.approx(_base(env).unwrapped.vehicle.speed)
        for throttle in (1.0, 1.0, -1.0):
            td = env.step(td.set(keys.ACTION, torch.tensor([0.0, throttle])))
            vehicle = _base(env).unwrapped.vehicle
            assert td["next", keys.SPEED].item() == pytest.approx(vehicle.speed, rel=1e-5)
            assert td["next", keys.CRASHED].item() == float(vehicle.crashed)
            td = td["next"]
    finally:
        env.close()


# -- continuous actions ---------------------------------------------------------------------------
def _drive(action: tuple[float, float], steps: int = 3) -> tuple[float, float, float]:
    """Initial speed, final speed and final |heading error| after repeating ``action`` from the same start."""
    empty_road = {"vehicles_count": 0}
    env = zoo.make_env("highway-fast", action="continuous", seed=0, config=empty_road)
    try:
        td = env.reset()
        speed0 = td[keys.SPEED].item()
        for _ in range(steps):
            td = env.step(td.set(keys.ACTION, torch.tensor(action)))["next"]
        return speed0, td[keys.SPEED].item(), abs(td[keys.HEADING_ERROR].item())
    finally:
        env.close()


def test_continuous_action_order_is_steer_then_throttle():
    start, faster, straight = _drive((0.0, 1.0))
    _, slower, _ = _drive((0.0, -1.0))
    assert faster > start > slower
    assert straight < 1e-3  # full throttle did not steer
    _, steered_speed, steered_heading = _drive((0.5, 0.0), steps=5)  # one simulated second at 5 Hz
    # steering alone turns the car without changing its speed
    assert steered_heading > 0.05
    assert steered_speed == pytest.approx(start, abs=0.5)


def test_braking_stops_the_car_but_never_reverses_it():
    _, stopped, _ = _drive((0.0, -1.0), steps=40)  # 8 s of full braking from ~25 m/s
    assert abs(stopped) < 0.5  # highway-env clips softly: a few cm/s either side of 0 (it went on to -15 m/s)


def test_continuous_control_uses_the_presets_decision_rate_and_steering_limit():
    def settings(action: str, **config) -> tuple[int, object]:
        env = zoo.make_env("highway-fast", action=action, seed=0, config=config)
        try:
            unwrapped = _base(env).unwrapped
            return unwrapped.config["policy_frequency"], getattr(unwrapped.action_type, "steering_range", None)
        finally:
            env.close()

    preset = SCENARIOS.get("highway-fast")
    frequency, steering = settings("continuous")
    assert frequency == preset.continuous_frequency_hz == 5
    assert tuple(steering) == (-preset.steering_limit_rad, preset.steering_limit_rad)
    assert settings("discrete")[0] == 1  # meta-actions keep highway-env's own rate
    assert settings("continuous", policy_frequency=2)[0] == 2  # the recipe's config has the last word


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "bad", "choices"), [
    ({"scenario": "nowhere"}, "'nowhere'", ["highway", "highway-fast", "merge", "roundabout", "racetrack"]),
    ({"obs": "pix"}, "'pix'", ["kinematics", "bev", "both"]),
    ({"action": "teleport"}, "'teleport'", ["continuous", "discrete"]),
], ids=["scenario", "obs", "action"])
def test_bad_choice_raises_zoo_error_naming_value_and_choices(kwargs, bad, choices):
    with pytest.raises(ZooError) as err:
        zoo.make_env(**kwargs)
    message = str(err.value)
    assert bad in message
    for choice in choices:
        assert choice in message


def test_typo_in_scenario_suggests_the_closest_name():
    with pytest.raises(ZooError, match="Did you mean 'highway'"):
        zoo.make_env("highwy")


def test_zero_envs_is_refused():
    with pytest.raises(ZooError, match=r"num_envs must be >= 1, got 0"):
        zoo.make_env("highway-fast", num_envs=0)


def test_merge_refuses_continuous_actions():
    with pytest.raises(ZooError) as err:
        zoo.make_env("merge", action="continuous")
    assert "'merge'" in str(err.value) and "'continuous'" in str(err.value) and "discrete" in str(err.value)


def test_only_decision_frames_are_rendered(monkeypatch):
    """highway-env would also draw every intermediate simulation step (14 per step at 15 Hz) after a render."""
    from highway_env.envs.common.graphics import EnvViewer

    calls = []
    display = EnvViewer.display
    monkeypatch.setattr(EnvViewer, "display", lambda self: calls.append(1) or display(self))
    env = DrivingEnv(EnvConfig("merge", obs="bev", action="discrete", bev_size=48))
    env.reset(seed=0)
    calls.clear()
    for _ in range(3):
        obs, *_ = env.step(1)
    assert len(calls) == 3 and obs[keys.PIXELS].std() > 0
    env.close()


@pytest.mark.parametrize("scenario", ["highway-fast", "merge", "roundabout", "intersection", "highway"])
def test_fast_kinematics_observes_exactly_what_highway_env_observes(scenario):
    """zoo.envs.observation.FastKinematics (numpy) gives highway-env's KinematicObservation (pandas) array bit for
    bit, on every step of random episodes, across resets."""
    from highway_env.envs.common.observation import KinematicObservation

    from zoo.envs.observation import FastKinematics

    actions = np.random.default_rng(0)  # not env.action_space: highway-env rebuilds it (unseeded) on reset
    with DrivingEnv(EnvConfig(scenario, action="discrete")) as env:
        compared = 0
        for episode in range(3):
            env.reset(seed=1_500_000 + episode)
            observation = env.unwrapped.observation_type
            assert isinstance(observation, FastKinematics)  # also after a reset, which rebuilds it
            for _ in range(15):
                rng = env.unwrapped.np_random
                state = rng.bit_generator.state  # a "shuffled" order draws from it: both see the same draw
                fast = observation.observe()
                rng.bit_generator.state = state
                reference = KinematicObservation.observe(observation)
                assert fast.dtype == reference.dtype and np.array_equal(fast, reference, equal_nan=True)
                compared += 1
                _, _, terminated, truncated, _ = env.step(int(actions.integers(env.action_space.n)))
                if terminated or truncated:
                    break
        assert compared >= 10
