"""The merge preset's env (zoo/envs/merge.py): merge-v0's road with traffic drawn per episode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import zoo  # noqa: F401  (registers zoo-merge-v0)
from zoo.envs.merge import EGO_SPEED_MPS, EGO_START_M
from zoo.envs.presets import SCENARIOS


def _traffic(seed: int, **config) -> list[tuple[tuple, float, float]]:
    env = gym.make("zoo-merge-v0", config={**SCENARIOS.get("merge").config, **config})
    env.reset(seed=seed)
    road = env.unwrapped.road
    return [(v.lane_index, float(v.position[0]), float(v.speed)) for v in road.vehicles[1:]]


def test_traffic_is_drawn_per_episode():
    assert _traffic(0) != _traffic(1)
    assert _traffic(0) == _traffic(0)


def test_every_lane_has_a_slower_car_ahead_and_the_ramp_its_cars():
    config = SCENARIOS.get("merge").config
    low, high = config["lead_gap_range"]
    for seed in range(5):
        cars = _traffic(seed)
        for lane in (0, 1):
            ahead = [x - EGO_START_M for index, x, _ in cars if index == ("a", "b", lane)]
            assert len(ahead) == config["lane_vehicles_count"]
            assert low <= min(ahead) <= high
        assert sum(index[0] in "jk" for index, _, _ in cars) == config["ramp_vehicles_count"]
        assert all(speed < EGO_SPEED_MPS for _, _, speed in cars)


def test_traffic_keeps_its_speed_above_merge_v0s_20_mps_lane_limit():
    env = gym.make("zoo-merge-v0", config={"lane_vehicles_count": 1, "ramp_vehicles_count": 0,
                                            "speed_range": [26.0, 26.0], "lead_gap_range": [200.0, 200.0]})
    env.reset(seed=0)
    for _ in range(3):
        env.step(1)  # IDLE
    speeds = [v.speed for v in env.unwrapped.road.vehicles[1:]]
    assert np.allclose(speeds, 26.0, atol=0.5), speeds


def test_the_episode_ends_at_its_duration():
    env = gym.make("zoo-merge-v0", config={"duration": 2, "lane_vehicles_count": 0, "ramp_vehicles_count": 0})
    env.reset(seed=0)
    assert env.step(4)[3] is False  # SLOWER
    assert env.step(4)[3] is True
