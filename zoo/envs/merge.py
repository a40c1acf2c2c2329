"""merge-v0 with its traffic drawn per episode (the ``merge`` preset's env, gymnasium id ``zoo-merge-v0``).

highway-env's ``MergeEnv`` places its three highway cars and its one ramp car at nearly fixed positions
(±5 m, ±1 m/s), so every episode is almost the same and holding one meta-action either always works or never
does. :class:`MergeTrafficEnv` keeps merge-v0's road, reward, ego car (right lane, 30 m from the start, 30 m/s) and
end (past x = 370 m), and draws the traffic from config keys on every reset:

* ``lane_vehicles_count`` highway cars per lane, in a row ahead: the first ``lead_gap_range`` metres ahead
  of the ego car's start, each next one ``gap_range`` metres further;
* ``ramp_vehicles_count`` cars on the on-ramp, the first ``ramp_start_range`` metres along it, then
  ``gap_range`` apart, which merge into the right lane as merge-v0's ramp car does;
* every car's speed (and IDM target speed) drawn from ``speed_range`` (highway) or ``ramp_speed_range`` (ramp);
* ``duration``: simulated seconds until the episode is cut (merge-v0 has no limit of its own).
"""

from __future__ import annotations

from highway_env import utils
from highway_env.envs.merge_env import MergeEnv

#: the ego car's start along the right lane (merge-v0's)
EGO_START_M = 30.0
#: the ego car's start speed (merge-v0's)
EGO_SPEED_MPS = 30.0


class MergeTrafficEnv(MergeEnv):
    """merge-v0 whose traffic is drawn per episode: cars in both lanes ahead and on the ramp (module docstring)."""

    @classmethod
    def default_config(cls) -> dict:
        cfg = super().default_config()
        cfg.update({
            "lane_vehicles_count": 3,
            "lead_gap_range": [20.0, 60.0],
            "gap_range": [25.0, 60.0],
            "speed_range": [22.0, 27.0],
            "ramp_vehicles_count": 1,
            "ramp_start_range": [80.0, 130.0],
            "ramp_speed_range": [20.0, 25.0],
            "speed_limit": 30.0,
            "duration": 15,
        })
        return cfg

    def _make_road(self) -> None:
        super()._make_road()
        # merge-v0's lanes keep highway-env's default 20 m/s speed limit, which caps every IDM car's target speed
        for lane in self.road.network.lanes_list():
            lane.speed_limit = self.config["speed_limit"]

    def _is_truncated(self) -> bool:
        return self.time >= self.config["duration"]

    def _make_vehicles(self) -> None:
        road, rng, config = self.road, self.np_random, self.config
        ego = self.action_type.vehicle_class(road, road.network.get_lane(("a", "b", 1)).position(EGO_START_M, 0.0),
                                             speed=EGO_SPEED_MPS)
        road.vehicles.append(ego)
        self.vehicle = ego
        traffic = utils.class_from_path(config["other_vehicles_type"])
        rows = [(("a", "b", lane), EGO_START_M + rng.uniform(*config["lead_gap_range"]),
                 config["lane_vehicles_count"], config["speed_range"]) for lane in (0, 1)]
        rows.append((("j", "k", 0), rng.uniform(*config["ramp_start_range"]), config["ramp_vehicles_count"],
                     config["ramp_speed_range"]))
        for lane_index, longitudinal, count, speeds in rows:
            for _ in range(count):
                lane = road.network.get_lane(lane_index)
                if lane_index[0] == "j" and longitudinal > lane.length:  # past the ramp's straight: onto its bend
                    lane_index, longitudinal = ("k", "b", 0), longitudinal - lane.length
                    lane = road.network.get_lane(lane_index)
                if longitudinal > lane.length:
                    break
                speed = float(rng.uniform(*speeds))
                vehicle = traffic(road, lane.position(longitudinal, 0.0), heading=lane.heading_at(longitudinal),
                                  speed=speed)
                # a highway car keeps its speed; a ramp car speeds up to a highway speed, as merge-v0's does
                vehicle.target_speed = speed if lane_index[0] == "a" else float(rng.uniform(*config["speed_range"]))
                road.vehicles.append(vehicle)
                longitudinal += rng.uniform(*config["gap_range"])
