"""highway-env's intersection with the ego car's approach speed as a config key (``zoo-intersection-v0``)."""

from __future__ import annotations

from highway_env.envs.intersection_env import IntersectionEnv


class ZooIntersectionEnv(IntersectionEnv):
    """``intersection-v0`` whose ego car approaches at ``ego_initial_speed`` (m/s) instead of the lane's limit.

    highway-env starts the ego car at its lane's speed limit (10 m/s), which selects the top meta-action target
    speed (9 m/s), so IDLE drives on at full speed. With ``ego_initial_speed`` set, the ego car starts at that speed
    and at the meta-action target speed nearest to it (highway-env's ``speed_to_index``); ``None`` keeps highway-env's
    own start.
    """

    @classmethod
    def default_config(cls) -> dict:
        return {**super().default_config(), "ego_initial_speed": None}

    def _make_vehicles(self, n_vehicles: int = 10) -> None:
        super()._make_vehicles(n_vehicles)
        speed = self.config["ego_initial_speed"]
        if speed is None:
            return
        for vehicle in self.controlled_vehicles:
            vehicle.speed = float(speed)
            if hasattr(vehicle, "speed_index"):  # meta-actions: the target speed nearest the start speed
                vehicle.speed_index = vehicle.speed_to_index(vehicle.speed)
                vehicle.target_speed = vehicle.index_to_speed(vehicle.speed_index)
