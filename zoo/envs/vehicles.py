"""Vehicle classes the presets hand to highway-env."""

from highway_env.vehicle.behavior import IDMVehicle


class IntersectionIDMVehicle(IDMVehicle):
    """IDM traffic for the intersection preset.

    highway-env's intersection env tunes the class attributes (jam distance, comfort accelerations) of
    whatever traffic class it is given, on every reset. Handing it this subclass keeps that tuning on
    the intersection's own traffic, instead of changing ``IDMVehicle`` for every later env in the process.
    """


class ThroughTrafficIDMVehicle(IDMVehicle):
    """The intersection's through traffic (``zoo-intersection-v0``'s ``through_traffic_headway_range``): highway-env's
    intersection tuning (comfort accelerations) with a shorter jam distance and time headway (5 m, 0.5 s instead of
    7 m, 1.5 s), so that a stream keeps the 1.5-2 s headways it enters with instead of braking itself apart (with
    1 s it slowed to about 7.5 m/s and left gaps that a random policy crossed in)."""

    DISTANCE_WANTED = 5.0
    TIME_WANTED = 0.5
    COMFORT_ACC_MAX = 6.0
    COMFORT_ACC_MIN = -3.0

    def acceleration(self, ego_vehicle, front_vehicle=None, rear_vehicle=None) -> float:
        """IDM's acceleration, not braking for a car that does not belong to the traffic (the ego car): the stream
        has right of way, and a driver that cuts across it is not waited for."""
        if front_vehicle is not None and not isinstance(front_vehicle, IDMVehicle):
            front_vehicle = None
        return super().acceleration(ego_vehicle, front_vehicle, rear_vehicle)
