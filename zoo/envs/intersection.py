"""highway-env's intersection with the ego car's approach speed and the traffic as config keys
(``zoo-intersection-v0``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from highway_env.envs.intersection_env import IntersectionEnv
from highway_env.vehicle.controller import ControlledVehicle

from zoo.envs.vehicles import ThroughTrafficIDMVehicle

#: highway-env's corner index of each end of the priority (east-west) road: 1 west, 3 east
_PRIORITY_ROAD_ENDS = (1, 3)


class ZooIntersectionEnv(IntersectionEnv):
    """``intersection-v0`` with config keys for the ego car's approach speed and for through traffic.

    ``ego_initial_speed`` (m/s): highway-env starts the ego car at its lane's speed limit (10 m/s), which selects the
    top meta-action target speed (9 m/s), so IDLE drives on at full speed. With this key set, the ego car starts at
    that speed and at the meta-action target speed nearest to it (highway-env's ``speed_to_index``); ``None`` keeps
    highway-env's own start.

    ``through_traffic_headway_range`` ([low, high] s): ``None`` keeps highway-env's traffic (cars spawned on every
    road with random routes, ``initial_vehicle_count`` and ``spawn_probability``), which gridlocks in the junction
    when it is dense. Set, the only other cars are two streams that drive straight through on the priority road,
    one from each end: each stream's cars enter at ``through_traffic_speed_range`` (m/s, one speed per stream and
    episode), one every ``low``-``high`` seconds (drawn per car, front to front), and the road starts full as if the
    streams had been running. A car enters no nearer than a jam gap behind the one before it (later, where that one was
    slowed down). They are :class:`~zoo.envs.vehicles.ThroughTrafficIDMVehicle`: IDM with a 5 m jam distance and a
    0.5 s time headway, so a stream keeps headways down to about 1.5 s, and they do not brake for the ego car. They have
    right of way over it, which crosses them from the road of lower priority (highway-env's regulation never stops
    them for it), and they never turn, so they never block one another in the junction.

    ``through_traffic_signal`` ([cycle, green] s, with through traffic only): the streams come from upstream signals
    and enter only while theirs is green, so they pass the junction in platoons with gaps of about ``cycle - green``
    between them; the cycle's phase is drawn per episode, and the second stream's green starts half a headway after
    the first's, so that its cars pass the ego car's path between the first stream's. ``None``: no signal.

    ``challenger_range`` ([low, high] m, with through traffic only): one of the two streams, drawn per episode, is
    shifted so that one of its cars starts this far along its approach lane, as highway-env's own "challenger" car
    (60 m): 58-68 m brings it to the ego car's path when the ego car drives there at full speed. ``None``: no shift.
    """

    @classmethod
    def default_config(cls) -> dict:
        return {**super().default_config(), "ego_initial_speed": None,
                # highway-env's own traffic (no through traffic): its intersection tunes the traffic class's attributes
                # on every reset, so it gets a class of its own (zoo/envs/vehicles.py)
                "other_vehicles_type": "zoo.envs.vehicles.IntersectionIDMVehicle",
                "through_traffic_headway_range": None, "through_traffic_speed_range": [8.0, 9.0],
                "challenger_range": None, "through_traffic_signal": None}

    def _make_vehicles(self, n_vehicles: int = 10) -> None:
        if self.config["through_traffic_headway_range"] is None:
            super()._make_vehicles(n_vehicles)
        else:
            self._signal_offset = float(self.np_random.uniform(0.0, self.config["through_traffic_signal"][0])) \
                if self.config["through_traffic_signal"] is not None else 0.0
            self._streams = [self._new_stream(end) for end in _PRIORITY_ROAD_ENDS]
            if self.config["challenger_range"] is not None:
                self._place_challenger(self._streams[self.np_random.integers(len(self._streams))])
            self._enter_due_cars()
            self._make_ego()
        speed = self.config["ego_initial_speed"]
        if speed is None:
            return
        for vehicle in self.controlled_vehicles:
            vehicle.speed = float(speed)
            if hasattr(vehicle, "speed_index"):  # meta-actions: the target speed nearest the start speed
                vehicle.speed_index = vehicle.speed_to_index(vehicle.speed)
                vehicle.target_speed = vehicle.index_to_speed(vehicle.speed_index)

    def _spawn_vehicle(self, *args: Any, **kwargs: Any) -> None:
        """highway-env's spawn, called at every step and by its ``_make_vehicles``; the streams' due cars instead."""
        if self.config["through_traffic_headway_range"] is None:
            super()._spawn_vehicle(*args, **kwargs)
        else:
            self._enter_due_cars()

    # -- through traffic on the priority road -------------------------------------------------------------------
    def _new_stream(self, end: int) -> dict[str, Any]:
        """A stream entering at road end ``end``, started early enough that its cars already fill the approach lane."""
        lane_index = (f"o{end}", f"ir{end}", 0)
        lane = self.road.network.get_lane(lane_index)
        speed = float(self.np_random.uniform(*self.config["through_traffic_speed_range"]))
        high = self.config["through_traffic_headway_range"][1]
        first_entry = -lane.length / speed - high + self.np_random.uniform(0.0, high)
        shift = 0.5 * float(np.mean(self.config["through_traffic_headway_range"])) * _PRIORITY_ROAD_ENDS.index(end)
        stream = {"end": end, "lane_index": lane_index, "lane": lane, "speed": speed, "last": None, "signal_shift": shift}
        stream["next_entry"] = self._after_red(stream, first_entry)
        return stream

    def _place_challenger(self, stream: dict[str, Any]) -> None:
        """Shift ``stream`` so that one of its cars is ``challenger_range`` m along its approach lane now, and put it
        and the cars that entered before it on the lane (those that entered after it come from ``next_entry``)."""
        speed, low, high = stream["speed"], *self.config["through_traffic_headway_range"]
        entry = -float(self.np_random.uniform(*self.config["challenger_range"])) / speed
        stream["next_entry"] = entry + self.np_random.uniform(low, high)
        while speed * -entry <= stream["lane"].length:
            stream["last"] = self._add_stream_car(stream, speed * -entry)
            entry -= self.np_random.uniform(low, high)

    def _add_stream_car(self, stream: dict[str, Any], longitudinal: float) -> Any:
        """A car of ``stream`` at ``longitudinal`` m along its approach lane, routed straight through the junction."""
        vehicle = ThroughTrafficIDMVehicle.make_on_lane(self.road, stream["lane_index"], longitudinal, stream["speed"])
        vehicle.plan_route_to(f"o{(stream['end'] + 2) % 4}")
        vehicle.randomize_behavior()
        self.road.vehicles.append(vehicle)
        return vehicle

    def _enter_due_cars(self) -> None:
        """Put every car whose entry time has come on its approach lane, where it would be now at its stream's speed.

        Entry times fall between decisions, so a car enters at the distance it would have driven since; one that
        would already have left the approach lane (while the road fills up at the start) is left out.
        """
        for stream in self._streams:
            while stream["next_entry"] <= self.time:
                longitudinal = stream["speed"] * (self.time - stream["next_entry"])
                room = self._room_behind_last_car(stream)
                if longitudinal > room:  # the car ahead was slowed down: enter behind it at IDM's jam gap, or wait
                    if room < 0:
                        break
                    longitudinal = room
                if longitudinal <= stream["lane"].length:
                    stream["last"] = self._add_stream_car(stream, longitudinal)
                stream["next_entry"] = self._after_red(
                    stream, stream["next_entry"] + self.np_random.uniform(*self.config["through_traffic_headway_range"]))

    def _after_red(self, stream: dict[str, Any], entry: float) -> float:
        """``entry``, or the end of the upstream signal's red phase if it falls in one (``through_traffic_signal``:
        [cycle, green] s, the cycle's phase drawn per episode; the second stream's green starts half a headway later,
        so that its cars fill the first stream's gaps at the junction)."""
        if self.config["through_traffic_signal"] is None:
            return entry
        cycle, green = self.config["through_traffic_signal"]
        phase = (entry - self._signal_offset - stream["signal_shift"]) % cycle
        return entry if phase < green else entry + cycle - phase

    def _room_behind_last_car(self, stream: dict[str, Any]) -> float:
        """How far along the approach lane a new car of ``stream`` may enter: a jam gap behind its last car."""
        last = stream["last"]
        if last is None or last.lane_index != stream["lane_index"]:
            return np.inf
        return stream["lane"].local_coordinates(last.position)[0] - last.LENGTH - last.DISTANCE_WANTED

    def _make_ego(self) -> None:
        """The ego car as highway-env makes it (on the approach lane from the south, routed to ``destination``)."""
        lane = self.road.network.get_lane(("o0", "ir0", 0))
        longitudinal = 60.0 + 5.0 * self.np_random.normal(1.0)
        ego = self.action_type.vehicle_class(self.road, lane.position(longitudinal, 0.0), speed=lane.speed_limit,
                                             heading=lane.heading_at(longitudinal))
        if isinstance(ego, ControlledVehicle):  # meta-actions; continuous control steers without a route
            ego.plan_route_to(self.config["destination"])
            ego.speed_index = ego.speed_to_index(lane.speed_limit)
            ego.target_speed = ego.index_to_speed(ego.speed_index)
        self.road.vehicles.append(ego)
        self.controlled_vehicles = [ego]
